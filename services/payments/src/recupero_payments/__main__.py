from recupero_payments.bootstrap import bootstrap
from recupero_payments.settings import PaymentsSettings
from recupero_runtime.service import serve


def main() -> None:
    settings = PaymentsSettings()
    _, app = bootstrap(settings)
    serve(app, settings)


if __name__ == "__main__":
    main()
