from recupero_notifier.bootstrap import bootstrap
from recupero_notifier.settings import NotifierSettings
from recupero_runtime.service import serve


def main() -> None:
    settings = NotifierSettings()
    _, app = bootstrap(settings)
    serve(app, settings)


if __name__ == "__main__":
    main()
