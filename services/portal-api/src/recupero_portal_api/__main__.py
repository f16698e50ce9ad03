from recupero_portal_api.bootstrap import bootstrap
from recupero_portal_api.settings import PortalSettings
from recupero_runtime.service import serve


def main() -> None:
    settings = PortalSettings()
    _, app = bootstrap(settings)
    serve(app, settings)


if __name__ == "__main__":
    main()
