"""stylelab never deletes or overwrites what it did not make: run folders, outputs, the demo's folder."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from stylelab import folders
from stylelab.cli import main
from stylelab.records import RunRecord
from stylelab.runs import write_run

from ..conftest import gradient_image

FAST = ["--size", "32", "--steps", "1", "--device", "cpu", "--quiet"]


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def user_folder(path):
    path.mkdir(parents=True)
    (path / "thesis.txt").write_text("work")
    return path


def record() -> RunRecord:
    from stylelab.recipes import Recipe

    return RunRecord(Recipe(size=32, steps=1), "c.png", ["s.png"], "done", history=[])


# ------------------------------------------------------------------ --run-dir


@pytest.mark.parametrize("where", ["mydata", "mydata/", "sub/../mydata"])
def test_run_dir_on_a_users_folder_is_refused_before_any_work(capsys, tmp_path, tiny_paths, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    user_folder(tmp_path / "mydata")
    content, style = tiny_paths
    code, err = run_cli(capsys, "run", content, "-s", style, "-o", "out.png", "--run-dir", where, *FAST)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "did not write" in err
    assert (tmp_path / "mydata" / "thesis.txt").read_text() == "work"
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "mydata.partial").exists()


@pytest.mark.parametrize("where", [".", "..", "sub/..", "", "/"])
def test_run_dir_on_the_working_folder_or_above_is_refused(capsys, tmp_path, tiny_paths, monkeypatch, where):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "keep.txt").write_text("mine")
    (tmp_path / "sibling.txt").write_text("theirs")
    monkeypatch.chdir(work)
    content, style = tiny_paths
    code, err = run_cli(capsys, "run", content, "-s", style, "-o", "out.png", "--run-dir", where, *FAST)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert (work / "keep.txt").read_text() == "mine" and (tmp_path / "sibling.txt").read_text() == "theirs"
    assert not (work / "out.png").exists()


def test_run_dir_that_is_a_file_or_a_link_or_holds_the_output(capsys, tmp_path, tiny_paths, monkeypatch):
    monkeypatch.chdir(tmp_path)
    content, style = tiny_paths
    (tmp_path / "afile").write_text("data")
    target = user_folder(tmp_path / "elsewhere")
    os.symlink(target, tmp_path / "link")
    for run_dir, out, words in [
        ("afile", "out.png", "existing file"),
        ("link", "out.png", "symbolic link"),
        ("rd", "rd/out.png", "would hold"),
    ]:
        code, err = run_cli(capsys, "run", content, "-s", style, "-o", out, "--run-dir", run_dir, *FAST)
        assert code == 2 and words in err, err
    assert (tmp_path / "afile").read_text() == "data" and (target / "thesis.txt").exists()
    assert not (tmp_path / "afile.partial").exists() and not (tmp_path / "rd").exists()


@pytest.mark.slow
def test_a_run_folder_made_by_an_earlier_run_is_replaced(capsys, tmp_path, tiny_paths):
    content, style = tiny_paths
    rd = tmp_path / "rd"
    argv = ["run", content, "-s", style, "-o", tmp_path / "out.png", "--run-dir", rd, *FAST]
    assert run_cli(capsys, *argv)[0] == 0
    first = json.loads((rd / "run.json").read_text())["finished"]
    assert run_cli(capsys, *argv, "--seed", "1")[0] == 0  # our own folder and our own output: replaced
    assert json.loads((rd / "run.json").read_text())["finished"] > first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rd")]  # the old one went, nothing aside
    (rd / "notes.txt").write_text("mine now")  # once a user's file is in it, it is theirs
    code, err = run_cli(capsys, *argv)
    assert code == 2 and "did not write" in err and (rd / "notes.txt").read_text() == "mine now"


def test_a_stale_partial_is_replaced_only_when_it_holds_nothing_else(tmp_path):
    rd = tmp_path / "rd"
    stale = tmp_path / "rd.partial"
    (stale / "snapshots").mkdir(parents=True)
    (stale / "metrics.csv").write_text("step\n")
    write_run(rd, record())  # a killed attempt's .partial: replaced
    assert (rd / "run.json").is_file() and not stale.exists()
    user_folder(tmp_path / "other.partial")
    with pytest.raises(folders.UnsafeFolderError):
        write_run(tmp_path / "other", record())
    assert (tmp_path / "other.partial" / "thesis.txt").exists()


def test_a_folder_that_appears_during_the_run_is_kept(tmp_path):
    partial = tmp_path / "rd.partial"
    partial.mkdir()
    user_folder(tmp_path / "rd")
    with pytest.raises(folders.UnsafeFolderError, match="appeared or changed"):
        folders.replace_folder(partial, tmp_path / "rd")
    assert (tmp_path / "rd" / "thesis.txt").exists() and partial.exists()


def test_a_folder_with_only_a_result_png_of_the_users_is_not_a_run_folder(tmp_path):
    folder = tmp_path / "theirs"
    folder.mkdir()
    gradient_image().save(folder / "result.png")
    assert not folders.is_run_folder(folder)
    (folder / "run.json").write_text(json.dumps({"not": "ours"}))
    assert not folders.is_run_folder(folder)
    with pytest.raises(folders.UnsafeFolderError):
        folders.check_folder(folder)


# ------------------------------------------------------------------ -o and other outputs


def test_an_output_png_not_made_by_stylelab_is_not_overwritten(capsys, tmp_path, tiny_paths):
    content, style = tiny_paths
    theirs = tmp_path / "holiday.png"
    gradient_image().save(theirs)
    before = theirs.read_bytes()
    code, err = run_cli(capsys, "run", content, "-s", style, "-o", theirs, *FAST)
    assert code == 2 and "not made by stylelab" in err and theirs.read_bytes() == before
    os.symlink(theirs, tmp_path / "link.png")
    code, err = run_cli(capsys, "run", content, "-s", style, "-o", tmp_path / "link.png", *FAST)
    assert code == 2 and "symbolic link" in err and theirs.read_bytes() == before


@pytest.mark.slow
def test_an_output_made_by_stylelab_is_replaced(capsys, tmp_path, tiny_paths):
    content, style = tiny_paths
    out = tmp_path / "out.png"
    assert run_cli(capsys, "run", content, "-s", style, "-o", out, *FAST)[0] == 0
    assert run_cli(capsys, "run", content, "-s", style, "-o", out, *FAST, "--seed", "2")[0] == 0


def test_the_demo_writes_only_into_a_new_or_its_own_folder(capsys, tmp_path):
    theirs = user_folder(tmp_path / "photos")
    code, err = run_cli(capsys, "demo", "-o", theirs, "-q")
    assert code == 2 and "did not write" in err
    assert sorted(p.name for p in theirs.iterdir()) == ["thesis.txt"]


def test_a_sweep_does_not_overwrite_a_users_experiment_toml_or_folders(capsys, tmp_path, tiny_paths):
    content, style = tiny_paths
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "experiment.toml").write_text("# my notes, not an experiment\n")
    argv = ["sweep", content, "--styles", style, "-o", exp, "--steps", "1", "--size", "32", "-q"]
    code, err = run_cli(capsys, *argv)
    assert code == 2 and "experiment" in err and (exp / "experiment.toml").read_text().startswith("# my notes")
    (exp / "experiment.toml").unlink()
    run_name = "content__style__default"
    user_folder(exp / "runs" / run_name)
    code, err = run_cli(capsys, *argv)
    assert code == 2 and "did not write" in err, err
    assert (exp / "runs" / run_name / "thesis.txt").exists() and not (exp / "experiment.toml").exists()


def test_check_folder_allows_new_and_empty_folders(tmp_path):
    assert folders.check_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    (tmp_path / "empty").mkdir()
    assert folders.check_folder(tmp_path / "empty") == tmp_path / "empty"


def test_remove_ours_refuses_a_folder_with_a_users_file(tmp_path):
    folder = tmp_path / "x.partial"
    (folder / "snapshots").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(folder / "snapshots" / "step_000001.png")
    (folder / "snapshots" / "mine.jpg").write_bytes(b"x")
    with pytest.raises(folders.UnsafeFolderError):
        folders.remove_ours(folder)
    assert (folder / "snapshots" / "mine.jpg").exists()
    (folder / "snapshots" / "mine.jpg").unlink()
    folders.remove_ours(folder)
    assert not folder.exists()
