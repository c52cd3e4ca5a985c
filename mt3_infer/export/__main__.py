"""python -m mt3_infer.export --model MODEL CHECKPOINT -o OUT

The export command of ``mt3-infer export MODEL --checkpoint CHECKPOINT -o OUT``
(:func:`mt3_infer.cli.export_model`) under this name for scripts: prints the
path written, or ``error: ...`` and exits with 2."""
import argparse
import sys

from ..exceptions import MT3InferError


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mt3_infer.export",
                                description="Export an upstream checkpoint to a TorchScript artifact "
                                            "(the same as `mt3-infer export`).")
    p.add_argument("--model", required=True, help="mr_mt3, mt3_pytorch or yourmt3")
    p.add_argument("checkpoint", help="mt3.pth (or its directory) / YourMT3 last.ckpt")
    p.add_argument("-o", "--output", required=True, help="the .pt file to write")
    p.add_argument("--force", action="store_true", help="export again even if the output is current")
    args = p.parse_args(argv)
    from ..cli import export_model

    try:
        path = export_model(args.model, args.checkpoint, args.output, args.force, quiet=True)
    except MT3InferError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
