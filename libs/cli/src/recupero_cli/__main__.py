"""`python -m recupero_cli`, the same as the `recupero` command."""

from recupero_cli.main import app

app(prog_name="recupero")
