from recupero_ingest.bootstrap import bootstrap
from recupero_ingest.settings import IngestSettings
from recupero_runtime.service import serve


def main() -> None:
    settings = IngestSettings()
    _, app = bootstrap(settings)
    serve(app, settings)


if __name__ == "__main__":
    main()
