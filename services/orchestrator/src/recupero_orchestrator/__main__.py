import gc

from recupero_orchestrator.bootstrap import bootstrap
from recupero_orchestrator.settings import OrchestratorSettings
from recupero_runtime.service import serve


def main() -> None:
    settings = OrchestratorSettings()
    _, app = bootstrap(settings)
    # What start-up built (modules, models, their schemas) lives as long as the process: frozen,
    # the full collections that firing a batch sets off do not walk it each time.
    gc.freeze()
    serve(app, settings)


if __name__ == "__main__":
    main()
