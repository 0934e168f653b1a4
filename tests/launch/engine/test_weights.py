"""launch.engine.weights (and the launch/weights.py command) against a real HTTP server on 127.0.0.1: download once, offline afterwards,
one-line errors with nothing partial left, hub and Drive routes, the CLI."""
import hashlib
import os
import subprocess
import sys

import pytest

from launch.engine import weights
from launch.engine.errors import ConfigError


from tests.repo import REPO  # noqa: E402
PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


def _files(root):
    """Every file in the cache except the (empty) lock files."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and ".locks" not in p.parts)


def test_first_call_downloads_second_works_with_the_server_stopped(server, cache):
    server.files["/mae/finetune/w.pth"] = PAYLOAD
    url = server.url + "/mae/finetune/w.pth"
    path = weights.fetch(url)
    with open(path, "rb") as f:
        assert f.read() == PAYLOAD
    assert server.gets["/mae/finetune/w.pth"] == 1
    server.stop()
    assert weights.fetch(url) == path
    assert path.startswith(str(cache)) and _files(cache) == [path[len(str(cache)) + 1:]]


def test_404_is_one_line_naming_the_url_and_leaves_nothing(server, cache):
    url = server.url + "/nope.pth"
    with pytest.raises(ConfigError) as err:
        weights.fetch(url)
    message = str(err.value)
    assert "\n" not in message and url in message and "HTTP 404" in message and "local path" in message
    assert _files(cache) == []


def test_connection_cut_mid_file_is_one_line_and_leaves_nothing(server, cache):
    server.files["/big.pth"] = PAYLOAD
    server.cut.add("/big.pth")
    url = server.url + "/big.pth"
    with pytest.raises(ConfigError) as err:
        weights.fetch(url)
    message = str(err.value)
    assert "\n" not in message and url in message and f"of {len(PAYLOAD)} bytes" in message
    assert _files(cache) == []
    server.cut.clear()  # a retry then succeeds
    with open(weights.fetch(url), "rb") as f:
        assert f.read() == PAYLOAD


def test_unreachable_host_says_how_to_prefetch(cache):
    with pytest.raises(ConfigError, match=r"cannot reach http://127\.0\.0\.1:9/w\.pth .*python -m launch\.weights"):
        weights.fetch("http://127.0.0.1:9/w.pth")
    assert _files(cache) == []


def test_published_hash_is_checked(server, cache):
    server.files["/vit_b_16_swag-9ac1b537.pth"] = PAYLOAD  # the name promises another sha256
    with pytest.raises(ConfigError, match="corrupt"):
        weights.fetch_url(server.url + "/vit_b_16_swag-9ac1b537.pth", hash_prefix="9ac1b537")
    assert _files(cache) == []
    good = hashlib.sha256(PAYLOAD).hexdigest()
    assert weights.fetch(f"{server.url}/vit_b_16_swag-9ac1b537.pth#sha256={good}")
    with pytest.raises(ConfigError, match="sha256=<64 hex digits>"):
        weights.fetch(server.url + "/x.pth#md5=1234")


def test_two_processes_asking_at_once_download_once(server, cache):
    server.files["/shared.pth"] = PAYLOAD
    server.slow = 1.0  # the second process arrives while the first is still downloading
    url = server.url + "/shared.pth"
    code = "import sys; from launch.engine.weights import fetch; print(fetch(sys.argv[1]))"
    env = dict(os.environ, TOME_CACHE=str(cache), PYTHONPATH=REPO)
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1] and open(outs[0], "rb").read() == PAYLOAD
    assert server.gets["/shared.pth"] == 1


def test_google_drive_share_link_passes_the_confirmation_page(server, cache, monkeypatch):
    monkeypatch.setattr(weights, "DRIVE_DOWNLOAD", server.url + "/drive/download")
    server.drive["1dacJa-XcaoLPZf--mLvzSdlzo5iMX2ST"] = ("finetuned.pth", PAYLOAD)
    link = "https://drive.google.com/file/d/1dacJa-XcaoLPZf--mLvzSdlzo5iMX2ST/view?usp=share_link"
    path = weights.fetch(link)
    assert path.endswith("drive.google.com/1dacJa-XcaoLPZf--mLvzSdlzo5iMX2ST/finetuned.pth")
    assert open(path, "rb").read() == PAYLOAD
    server.stop()
    assert weights.fetch(link) == path


def test_google_drive_page_without_a_form_says_what_to_do(server, cache, monkeypatch):
    server.files["/drive/quota"] = b"<html>Too many users have viewed or downloaded this file</html>"
    server.html.add("/drive/quota")
    monkeypatch.setattr(weights, "DRIVE_DOWNLOAD", server.url + "/drive/quota")
    link = "https://drive.google.com/file/d/1rRsmU8x7D-x4BvcPyroUJwU18eixNfKg/view"
    with pytest.raises(ConfigError) as err:
        weights.fetch(link)
    message = str(err.value)
    assert "\n" not in message and link in message and "download the file and pass its local path" in message
    assert _files(cache) == []


def _run_hub(cache, server, *sources):
    env = dict(os.environ, TOME_CACHE=str(cache), PYTHONPATH=REPO, HF_ENDPOINT=server.url,
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1")
    return subprocess.run([sys.executable, "-m", "launch.weights", *sources], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120)


def test_hub_file_through_huggingface_hub_pointed_at_the_local_server(server, cache):
    server.hub[("timm/vit_tiny_test", "model.safetensors")] = PAYLOAD
    done = _run_hub(cache, server, "hf-hub:timm/vit_tiny_test/model.safetensors")
    assert done.returncode == 0, done.stderr
    path = done.stdout.strip().splitlines()[-1]
    assert path.startswith(str(cache / "hf")) and open(path, "rb").read() == PAYLOAD
    assert server.gets["/timm/vit_tiny_test/resolve/main/model.safetensors"] == 1
    server.stop()  # offline afterwards
    again = _run_hub(cache, server, "hf-hub:timm/vit_tiny_test/model.safetensors")
    assert again.returncode == 0 and again.stdout.strip() == path


def test_hub_missing_file_is_one_line(server, cache):
    done = _run_hub(cache, server, "hf-hub:timm/absent/model.safetensors")
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: cannot fetch hf-hub:timm/absent/model.safetensors from the Hugging Face hub")


def test_source_spellings_resolve_to_the_publishers_files():
    assert weights.parse_hf("hf-hub:MCG-NJU/videomae-base-finetuned-kinetics") == \
        ("MCG-NJU/videomae-base-finetuned-kinetics", None, None)
    assert weights.parse_hf("hf-hub:org/repo@v1.0/sub/file.bin") == ("org/repo", "v1.0", "sub/file.bin")
    # timm's own pretrained config of the AugReg ViT-B/16 names this hub repository
    assert weights.resolve_timm("timm:vit_base_patch16_224.augreg_in21k_ft_in1k") == \
        "hf-hub:timm/vit_base_patch16_224.augreg_in21k_ft_in1k/model.safetensors"
    # torchvision's SWAG URL, whose file name carries the first hex digits of its sha256
    url = weights.resolve_torchvision("torchvision:ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1")
    assert url == "https://download.pytorch.org/models/vit_b_16_swag-9ac1b537.pth"
    assert weights._torchvision_prefix(url) == "9ac1b537"
    with pytest.raises(ConfigError, match="members"):
        weights.resolve_torchvision("torchvision:ViT_B_16_Weights.NOPE")
    with pytest.raises(ConfigError, match="timm.list_pretrained"):
        weights.resolve_timm("timm:vit_nope.tag")
    with pytest.raises(ConfigError, match="does not exist; expected a local path"):
        weights.fetch("checkpoints/absent.pth")


def test_cli_prints_each_path_last_line_last_path(server, cache, tmp_path):
    server.files["/a.pth"], server.files["/b.pth"] = b"a" * 10, b"b" * 10
    local = tmp_path / "local.pth"
    local.write_bytes(b"c")
    env = dict(os.environ, TOME_CACHE=str(cache), PYTHONPATH=REPO)
    done = subprocess.run([sys.executable, "-m", "launch.weights", server.url + "/a.pth", str(local),
                           server.url + "/b.pth"], capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[1] == str(local) and open(lines[-1]).read() == "b" * 10 and len(lines) == 3


def test_timm_tag_falls_back_to_pytorch_model_bin_only_when_the_hub_has_no_safetensors(server, cache):
    server.hub[("timm/old_model", "pytorch_model.bin")] = PAYLOAD
    code = ("from launch.engine import weights; weights.resolve_timm = lambda s: "
            "'hf-hub:timm/old_model/model.safetensors'; print(weights.fetch('timm:old_model.tag'))")
    env = dict(os.environ, TOME_CACHE=str(cache), PYTHONPATH=REPO, HF_ENDPOINT=server.url,
               HF_HUB_DISABLE_TELEMETRY="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("pytorch_model.bin")
    assert open(done.stdout.strip(), "rb").read() == PAYLOAD
