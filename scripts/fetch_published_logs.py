"""Download the authors' two published training logs (SSD and Faster R-CNN) from their public
repository, github.com/p517332051/GAN-Knowledge-Distillation-SSD, where the tests, the log
comparisons and the gallery read them.

    python scripts/fetch_published_logs.py                       # to $GANKD_PUBLISHED_LOGS or ../shared/published_logs
    python scripts/fetch_published_logs.py --dest published_logs && export GANKD_PUBLISHED_LOGS=$PWD/published_logs

Each file is checked against the SHA-256 of the copy this project was tested with before it is
written. Exit status 0 when both logs are in place, 1 when a download fails or a file is not
the expected one (nothing half written).
"""
import argparse
import sys

from gankd_gluon.logs.published import (BASE_URL, ENV_VAR, FetchError, fetch_published_logs,
                                        published_logs_dir)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=" ".join(__doc__.split("\n\n")[0].split()),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dest", default=published_logs_dir(),
                        help="folder to write to (the tests read $%s, else "
                             "../shared/published_logs)" % ENV_VAR)
    parser.add_argument("--base-url", default=BASE_URL,
                        help="where the files are (<base-url>/<file>); a mirror or file:// URL")
    parser.set_defaults(verify=True)       # on the parser: the help shows no "(default: True)"
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        default=argparse.SUPPRESS,
                        help="keep a file whose SHA-256 differs from the tested copy's")
    return parser.parse_args(argv)


def main(args):
    try:
        done = fetch_published_logs(args.dest, args.base_url, verify=args.verify)
    except FetchError as err:
        print("error: %s" % err, file=sys.stderr)
        return 1
    for path, how in done:
        print("%s: %s" % (how, path))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
