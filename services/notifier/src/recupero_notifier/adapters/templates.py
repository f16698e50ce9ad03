"""Message templates: Jinja2 files under `recupero_notifier/templates/<name>/`.

Each template is a directory with `subject.txt`, `body.txt` and `body.html` (email), `short.txt`
(SMS and WhatsApp session text) and `voice.txt` (read aloud on a call). HTML is autoescaped
(a debtor's name is data, never markup); a variable the template uses but the context lacks is an
error, not an empty string in a debtor's inbox.
"""

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from recupero_notifier.domain.messages import ReminderContext, RenderedMessage, UnknownTemplate

PARTS = ("subject.txt", "body.txt", "body.html", "short.txt", "voice.txt")


class JinjaTemplates:
    def __init__(self, package: str = "recupero_notifier", directory: str = "templates") -> None:
        self._environment = Environment(
            loader=PackageLoader(package, directory),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        files = set(self._environment.list_templates())
        candidates = {path.split("/", 1)[0] for path in files if "/" in path}
        self.names = frozenset(
            name for name in candidates if all(f"{name}/{part}" in files for part in PARTS)
        )

    def render(self, name: str, context: ReminderContext) -> RenderedMessage:
        if name not in self.names:
            known = ", ".join(sorted(self.names))
            raise UnknownTemplate(f"no template {name!r}; known templates: {known}")
        subject, text, html, short, voice = (
            self._environment.get_template(f"{name}/{part}").render(context.variables())
            for part in PARTS
        )
        return RenderedMessage(
            subject=subject.strip(), text=text, html=html, short=short.strip(), voice=voice.strip()
        )
