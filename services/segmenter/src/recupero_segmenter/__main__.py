from recupero_runtime.service import serve
from recupero_segmenter.bootstrap import bootstrap
from recupero_segmenter.settings import SegmenterSettings


def main() -> None:
    settings = SegmenterSettings()
    _, app = bootstrap(settings)
    serve(app, settings)


if __name__ == "__main__":
    main()
