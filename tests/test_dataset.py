"""Fine-tune datasets: discovery, every check (each bad file named), and the zip the trainer reads."""

import io
import zipfile

import pytest
from imagegen.providers.replicate._trainings import FILES_API_LIMIT_BYTES
from PIL import Image

from imagegen.errors import FineTuneError
from imagegen.finetune import load_dataset, safe_stem


def save_image(path, size=(512, 512), colour=(200, 30, 30), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)
    return path


def photo_folder(tmp_path, count=10, size=(512, 512)):
    folder = tmp_path / "photos"
    for i in range(count):
        save_image(folder / f"photo{i:02d}.png", size, colour=(i * 20, 100, 255 - i * 20))
    return folder


def problems_of(exc_info):
    return "\n".join(exc_info.value.problems)


def test_folder_with_sidecar_captions_gives_each_image_its_caption(tmp_path):
    folder = photo_folder(tmp_path)
    (folder / "photo00.txt").write_text("a photo of TOK on a beach\n")
    (folder / "photo03.txt").write_text("TOK in a red coat")
    dataset = load_dataset(folder)
    assert len(dataset.images) == 10
    assert dataset.manifest["photo00.png"] == "a photo of TOK on a beach"
    assert dataset.manifest["photo03.png"] == "TOK in a red coat"
    assert dataset.manifest["photo01.png"] is None
    assert dataset.warnings == []


def test_zip_holds_images_with_captions_beside_them_and_nothing_else(tmp_path):
    folder = photo_folder(tmp_path, count=10)
    (folder / "photo02.txt").write_text("TOK smiling")
    path = load_dataset(folder).write_zip(tmp_path / "out" / "dataset.zip")
    assert path.suffix == ".zip"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert sorted(names) == sorted([f"photo{i:02d}.png" for i in range(10)] + ["photo02.txt"])
        assert archive.read("photo02.txt").decode() == "TOK smiling"
        original = (folder / "photo05.png").read_bytes()
        assert archive.read("photo05.png") == original


def test_zip_of_the_same_dataset_is_byte_identical(tmp_path):
    dataset = load_dataset(photo_folder(tmp_path))
    first = dataset.write_zip(tmp_path / "a.zip").read_bytes()
    second = dataset.write_zip(tmp_path / "b.zip").read_bytes()
    assert first == second


def test_names_are_made_safe_and_unique_with_captions_following(tmp_path):
    folder = tmp_path / "photos"
    save_image(folder / "Mé à la plage (1).png", colour=(1, 2, 3))
    save_image(folder / "Me a la plage 1.jpg", colour=(9, 9, 9), fmt="JPEG")
    (folder / "Mé à la plage (1).txt").write_text("TOK at the beach")
    dataset = load_dataset(folder, captions={"Me a la plage 1.jpg": "TOK again"})
    names = list(dataset.manifest)
    assert all(n.isascii() and " " not in n and "(" not in n for n in names)
    assert len({n.lower().rsplit(".", 1)[0] for n in names}) == 2  # no two images share a caption file
    assert sorted(dataset.manifest.values()) == ["TOK again", "TOK at the beach"]
    assert safe_stem("../../etc/passwd") == "etc_passwd"


def test_captions_mapping_by_name_or_stem_wins_over_sidecar_with_a_warning(tmp_path):
    folder = photo_folder(tmp_path)
    (folder / "photo01.txt").write_text("from the file")
    dataset = load_dataset(folder, captions={"photo01": "from the mapping", "photo02.png": "two"})
    assert dataset.manifest["photo01.png"] == "from the mapping"
    assert dataset.manifest["photo02.png"] == "two"
    assert any("replaces its .txt" in w for w in dataset.warnings)


def test_list_of_paths_picks_up_sidecars_next_to_each_image(tmp_path):
    a = save_image(tmp_path / "x" / "a.png", colour=(1, 1, 1))
    b = save_image(tmp_path / "y" / "a.png", colour=(2, 2, 2))
    (tmp_path / "y" / "a.txt").write_text("second")
    dataset = load_dataset([a, b])
    assert dataset.manifest == {"a.png": None, "a_2.png": "second"}


def test_existing_zip_is_read_with_its_captions_and_repacked_flat(tmp_path):
    source = tmp_path / "mine.zip"
    with zipfile.ZipFile(source, "w") as archive:
        for i in range(3):
            buffer = io.BytesIO()
            Image.new("RGB", (600, 512), (i, i, i)).save(buffer, format="JPEG")
            archive.writestr(f"set/img{i}.jpg", buffer.getvalue())
        archive.writestr("set/img1.txt", "TOK, profile")
        archive.writestr("__MACOSX/set/._img1.jpg", b"junk")
    dataset = load_dataset(source)
    assert dataset.manifest == {"img0.jpg": None, "img1.jpg": "TOK, profile", "img2.jpg": None}
    assert any("only 3 images" in w for w in dataset.warnings)


def test_every_bad_file_is_listed_in_one_error(tmp_path):
    folder = photo_folder(tmp_path, count=10)
    save_image(folder / "tiny.png", size=(200, 900))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    save_image(folder / "anim.gif", fmt="GIF")
    Image.new("RGB", (512, 512)).save(folder / "fake.png", format="GIF")  # GIF data, .png name
    (folder / "notes.md").write_text("hello")
    (folder / "orphan.txt").write_text("a caption for nothing")
    (folder / "copy.png").write_bytes((folder / "photo04.png").read_bytes())
    with pytest.raises(FineTuneError) as exc_info:
        load_dataset(folder, captions={"missing.jpg": "nobody"})
    text = problems_of(exc_info)
    assert "tiny.png: 200x900 is too small" in text
    assert "broken.jpg: not a readable image" in text
    assert "anim.gif: not an image format" in text
    assert "fake.png: holds GIF data" in text
    assert "notes.md: not an image format" in text
    assert "orphan.txt: caption matches no image" in text
    assert "captions['missing.jpg']: matches no image" in text
    assert "copy.png" in text and "photo04.png" in text and "the same image" in text
    assert len(exc_info.value.problems) == 8


def test_small_images_and_few_images_are_warnings_not_errors(tmp_path):
    folder = photo_folder(tmp_path, count=3, size=(300, 700))
    dataset = load_dataset(folder)
    assert len(dataset.images) == 3
    assert sum("is small" in w for w in dataset.warnings) == 3
    assert any("only 3 images" in w for w in dataset.warnings)


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FineTuneError, match="no images found"):
        load_dataset(tmp_path / "empty")


def test_missing_source_is_an_error_naming_images(tmp_path):
    with pytest.raises(FineTuneError, match="images: .*nowhere"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(FineTuneError, match="gone.png: file not found"):
        load_dataset([tmp_path / "gone.png"])


def test_dataset_over_the_trainers_limit_is_refused_before_upload(tmp_path):
    folder = photo_folder(tmp_path, count=10)
    with pytest.raises(FineTuneError, match="the trainer takes at most"):
        load_dataset(folder, max_zip_bytes=20_000)
    dataset = load_dataset(folder)  # no limit: the trainer's estimate names its own
    with pytest.raises(FineTuneError, match="the trainer takes at most"):
        dataset.write_zip(tmp_path / "out" / "d.zip", max_bytes=1_000)
    assert not (tmp_path / "out" / "d.zip").exists() and not (tmp_path / "out" / "d.zip.partial").exists()
    assert FILES_API_LIMIT_BYTES == 100_000_000


def test_a_file_changed_after_the_check_is_not_zipped(tmp_path):
    folder = photo_folder(tmp_path)
    dataset = load_dataset(folder)
    save_image(folder / "photo00.png", colour=(0, 0, 0))
    with pytest.raises(FineTuneError, match="changed after it was checked"):
        dataset.write_zip(tmp_path / "d.zip")
    assert not (tmp_path / "d.zip").exists()
