from recupero_orchestrator.bootstrap import bootstrap
from recupero_orchestrator.settings import OrchestratorSettings
from recupero_runtime.service import serve


def main() -> None:
    settings = OrchestratorSettings()
    _, app = bootstrap(settings)
    serve(app, settings)


if __name__ == "__main__":
    main()
