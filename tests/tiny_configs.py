"""Tiny experiment configs the launcher and engine tests run in seconds."""
import textwrap

from tests.repo import REPO


def write_config(tmp_path, extra: str = "", name: str = "tiny") -> str:
    """A tiny image experiment on generated data (2 classes, 16 px images, a 2-layer ViT)."""
    text = textwrap.dedent(f"""\
        _base_: {REPO}/image/configs/demo.yaml
        name: {name}
        data:
          root: {tmp_path}/data
          demo_classes: 2
          demo_train_per_class: 8
          demo_val_per_class: 4
          demo_size: 16
          img_size: 16
        model:
          kwargs: {{patch_size: 8, embed_dim: 32, depth: 2, num_heads: 2}}
          num_classes: 2
        tome:
          eval_r: [0, 1]
        train:
          epochs: 2
          batch_size: 4
          eval_every: 1
        eval:
          throughput_batch: 4
          throughput_iters: 1
          throughput_warmup: 1
        launch:
          out_dir: {tmp_path}/runs
          num_workers: 0
        stages: []
        """) + textwrap.dedent(extra)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path)
