"""python -m mt3_infer.export --model mr_mt3|mt3_pytorch|yourmt3 CHECKPOINT -o OUT"""
import argparse
import sys

from ..exceptions import MT3InferError
from . import export_checkpoint


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mt3_infer.export",
                                description="Export an upstream checkpoint to a TorchScript artifact.")
    p.add_argument("--model", required=True, help="mr_mt3, mt3_pytorch or yourmt3")
    p.add_argument("checkpoint", help="mt3.pth (or its directory) / YourMT3 last.ckpt")
    p.add_argument("-o", "--output", required=True, help="the .pt file to write")
    args = p.parse_args(argv)
    try:
        path = export_checkpoint(args.model, args.checkpoint, args.output)
    except MT3InferError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
