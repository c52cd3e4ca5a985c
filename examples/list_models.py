"""List the registry: models, aliases, where checkpoints live and whether they
are downloaded.  Needs no model and no network.

    python examples/list_models.py
"""
import mt3_infer
from mt3_infer import download, registry


def main():
    print(f"mt3-infer {mt3_infer.__version__}; checkpoint root: {registry.checkpoint_root()}")
    for model_id, info in mt3_infer.list_models().items():
        path = registry.default_checkpoint_path(model_id)
        # every checkpoint file in place with its recorded size (an empty
        # folder left by a failed download is not a model)
        missing = download.missing_files(model_id)
        if registry.is_bundled(model_id):  # shipped inside the package, never downloaded
            state = "bundled" if not missing else "damaged: reinstall"
        else:
            state = "not downloaded" if missing else "present"
        speed = info["metadata"]["performance"]["speed_x_realtime"]
        print(f"{model_id:12s} {info['name']:12s} {speed:6.2f}x  {state:15s} {path}")
    print("aliases:", ", ".join(f"{a}->{t}" for a, t in registry.aliases().items()))


if __name__ == "__main__":
    main()
