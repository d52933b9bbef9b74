"""The labeler's flows with JavaScript off: plain HTML forms over HTTP
(FastAPI's TestClient), against a real SQLite file. No TensorFlow here; the
model flows are in test_labeler_model.py."""
import html
import io
import re
import zipfile

import numpy as np
import pytest
from PIL import Image

from db import labeling
from labeler import security, web
from labeler.settings import settings
from service import ingest
from tests.helpers.labeler import (XSS, client_for, labeled, png_bytes, post, seeded_store,
                                   tile_ids, token)


@pytest.fixture
def db(tmp_path):
    with seeded_store(tmp_path / "labeler.db") as seeded_db:
        yield seeded_db


@pytest.fixture
def client(db):
    return client_for(db[0])


# -- the grid ------------------------------------------------------------------------

def test_grid_pages_newest_first_and_the_pages_cover_every_image_once(db, client):
    _, store, train, test = db
    seen = []
    for page in range(1, 5):
        response = client.get(f"/images?per_page=10&page={page}")
        assert response.status_code == 200
        seen += tile_ids(response.text)
    assert seen == sorted(train + test, reverse=True)
    assert "page 4 of 4" in response.text
    assert 'rel="next"' not in response.text


def test_grid_filters_by_class_split_source_and_status(db, client):
    _, store, train, test = db
    circle = next(c["id"] for c in labeling.class_summary(store) if c["name"] == "circle")
    ids = tile_ids(client.get(f"/images?label={circle}&split=test").text)
    assert len(ids) == 2 and set(ids) <= set(test)
    assert len(tile_ids(client.get("/images?split=train&per_page=200").text)) == len(train)
    assert tile_ids(client.get("/images?source=webcam").text) == []
    store.remove_labels(train[:3])
    assert sorted(tile_ids(client.get("/images?status=unlabeled").text)) == sorted(train[:3])
    assert sorted(tile_ids(client.get("/images?label=none").text)) == sorted(train[:3])


def test_filter_form_keeps_the_chosen_filters_and_the_forms_carry_the_servers_limits(
        db, client):
    from db.store import MAX_LABEL_LENGTH
    _, store, train, _ = db
    circle = next(c["id"] for c in labeling.class_summary(store) if c["name"] == "circle")
    page = client.get(f"/images?label={circle}&split=test&status=labeled&sort=oldest").text
    for chosen in (f'<option value="{circle}" selected>circle</option>',
                   '<option value="test" selected>test</option>',
                   '<option value="labeled" selected>labeled</option>',
                   '<option value="oldest" selected>oldest</option>'):
        assert chosen in page
    assert page.count(" selected>") == 4
    assert f'max="{settings.max_page_size}"' in page
    for url in ("/images", f"/images/{train[0]}", "/capture", "/classes"):
        fields = re.findall(r'maxlength="(\d+)"', client.get(url).text)
        assert fields and set(fields) == {str(MAX_LABEL_LENGTH)}, url


def test_grid_rejects_bad_filter_values_with_a_400_page_not_a_500(client):
    for query in ("page=x", "status=bogus", "label=abc", "sort=sideways", "source=fax",
                  "split=validation", "per_page=lots"):
        response = client.get(f"/images?{query}")
        assert response.status_code == 400, query
        assert "text/html" in response.headers["content-type"]
        assert 'id="error-message"' in response.text


def test_page_size_is_capped_at_max_page_size(db, client, monkeypatch):
    monkeypatch.setattr(settings, "max_page_size", 7)
    assert len(tile_ids(client.get("/images?per_page=1000").text)) == 7


def test_select_all_on_page_checks_every_box_without_javascript(client):
    page = client.get("/images?per_page=5&select=page").text
    assert len(re.findall(r'name="ids" value="\d+" form="batch" checked', page)) == 5
    plain = client.get("/images?per_page=5").text
    assert " checked" not in plain.split('id="grid"')[1]


# -- batch edits -----------------------------------------------------------------------

def test_batch_label_with_a_new_class_labels_every_selected_image(db, client):
    _, store, train, _ = db
    response = post(client, "/images/batch", {"ids": train[:5], "action": "label",
                                               "new_label": "blob", "next": "/images?page=1"})
    assert response.status_code == 200
    assert "Labeled 5 image(s) as blob." in response.text
    assert labeled(store, train[:5]) == {i: "blob" for i in train[:5]}
    assert labeled(store, train[5:6]) != {train[5]: "blob"}


def test_batch_label_with_an_existing_class_from_the_list(db, client):
    _, store, train, _ = db
    post(client, "/images/batch", {"ids": train[:3], "action": "label", "label": "star"})
    assert set(labeled(store, train[:3]).values()) == {"star"}


def test_batch_label_without_a_class_or_selection_says_what_is_missing(db, client):
    _, _, train, _ = db
    response = post(client, "/images/batch", {"ids": train[:2], "action": "label"})
    assert response.status_code == 400 and "Pick a class" in response.text
    response = post(client, "/images/batch", {"action": "label", "label": "star"})
    assert response.status_code == 400 and "Select at least one image" in response.text
    response = post(client, "/images/batch", {"ids": train[:2], "action": "label",
                                               "new_label": "x" * 65})
    assert response.status_code == 400 and "at most 64" in response.text


def test_batch_move_to_test_split(db, client):
    _, store, train, _ = db
    post(client, "/images/batch", {"ids": train[:4], "action": "split", "split": "test"})
    assert [store.image(i)["split"] for i in train[:5]] == ["test"] * 4 + ["train"]


def test_delete_is_soft_hidden_from_the_grid_and_undo_restores(db, client):
    _, store, train, test = db
    response = post(client, "/images/batch", {"ids": train[:3], "action": "delete"})
    assert "Deleted 3 image(s)." in response.text
    undo = re.search(r'<form method="post" action="/images/batch" class="inline">(.*?)</form>',
                     response.text, re.S).group(1)
    assert sorted(int(i) for i in re.findall(r'name="ids" value="(\d+)"', undo)) == sorted(train[:3])
    assert not set(train[:3]) & set(tile_ids(client.get("/images?per_page=200").text))
    assert sorted(tile_ids(client.get("/images?status=deleted").text)) == sorted(train[:3])
    assert all(store.image(i)["deleted_at"] for i in train[:3])
    # The undo button posts the restore form shown in the message.
    post(client, "/images/batch", {"ids": train[:3], "action": "restore"})
    assert not any(store.image(i)["deleted_at"] for i in train[:3])
    assert len(tile_ids(client.get("/images?per_page=200").text)) == len(train + test)


def test_deleted_images_leave_training_data(db, client):
    _, store, train, _ = db
    post(client, "/images/batch", {"ids": train[:2], "action": "delete"})
    assert not {i for i, _ in store.labeled_images("train")} & set(train[:2])


def test_batch_size_is_limited_to_max_batch(db, client, monkeypatch):
    _, store, train, _ = db
    monkeypatch.setattr(settings, "max_batch", 3)
    response = post(client, "/images/batch", {"ids": train[:4], "action": "label",
                                               "label": "star"})
    assert response.status_code == 413
    assert "At most 3 images" in response.text
    assert post(client, "/images/batch", {"ids": train[:3], "action": "label",
                                          "label": "star"}).status_code == 200


def test_a_malformed_form_is_a_400_and_one_over_the_field_limit_a_413(client, monkeypatch):
    token(client)
    response = client.post("/images/batch", content=b"garbage",
                           headers={"content-type": "multipart/form-data; boundary=zz"})
    assert response.status_code == 400 and "The form could not be read" in response.text
    monkeypatch.setattr(settings, "max_batch", 3)
    response = post(client, "/images/batch", {"ids": list(range(200)), "action": "label"})
    assert response.status_code == 413 and "Too many fields" in response.text


def test_unknown_image_ids_are_ignored_not_a_500(db, client):
    response = post(client, "/images/batch", {"ids": [999999], "action": "label",
                                               "label": "star"})
    assert response.status_code == 200 and "Labeled 0 image(s)" in response.text


# -- CSRF, origin, password -------------------------------------------------------------

def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(db, client):
    _, store, train, _ = db
    client.get("/images")
    response = client.post("/images/batch", data={"ids": train[:2], "action": "delete"})
    assert response.status_code == 403
    response = client.post("/images/batch", data={"ids": train[:2], "action": "delete",
                                                  "csrf": "0" * 64})
    assert response.status_code == 403
    assert not any(store.image(i)["deleted_at"] for i in train[:2])


def test_a_token_from_another_browser_cookie_is_refused(db, client):
    _, store, train, _ = db
    stolen = token(client)
    other = client_for(db[0])
    other.get("/images")
    response = other.post("/images/batch", data={"ids": train[:2], "action": "delete",
                                                 "csrf": stolen})
    assert response.status_code == 403
    assert not store.image(train[0])["deleted_at"]


def test_a_cross_site_post_is_refused_even_with_a_valid_token(db, client):
    _, store, train, _ = db
    data = {"ids": train[:2], "action": "delete", "csrf": token(client)}
    assert client.post("/images/batch", data=data,
                       headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.post("/images/batch", data=data,
                       headers={"Referer": "https://evil.example/x"}).status_code == 403
    assert not store.image(train[0])["deleted_at"]
    assert client.post("/images/batch", data=data,
                       headers={"Origin": "http://127.0.0.1"},
                       follow_redirects=False).status_code == 303


def test_a_page_of_another_site_cannot_reach_the_labeler_under_its_own_name(db, client):
    # DNS rebinding: evil.example resolves to 127.0.0.1, so the browser sends
    # the attacker's host name (and origin) to the local labeler.
    _, store, train, _ = db
    evil = {"Host": "evil.example:7861"}
    exported = client.get("/export/dataset.zip", headers=evil)
    assert exported.status_code == 400 and "evil.example" in exported.text
    assert 'name="csrf"' not in client.get("/classes", headers=evil).text
    data = {"ids": train[:2], "action": "delete", "csrf": token(client)}
    assert client.post("/images/batch", data=data, headers={
        **evil, "Origin": "http://evil.example:7861"}).status_code == 400
    assert not store.image(train[0])["deleted_at"]
    for name in ("localhost:7861", "127.0.0.1", "[::1]:7861", "LOCALHOST"):
        assert client.get("/images", headers={"Host": name}).status_code == 200, name


def test_only_the_names_the_owner_gives_are_answered_besides_localhost(db):
    from service.access import allowed_hosts
    client = client_for(db[0], host="0.0.0.0", password="s3cret",
                        allowed_hosts=["labeler.lan"])
    signed = {"auth": ("any", "s3cret")}
    assert client.get("/images", headers={"Host": "labeler.lan:7861"}, **signed).status_code == 200
    assert client.get("/images", headers={"Host": "10.0.0.9:7861"}, **signed).status_code == 400
    assert allowed_hosts("0.0.0.0", password=True) is None  # any name: the password guards
    assert "192.168.1.5" in allowed_hosts("192.168.1.5")
    assert allowed_hosts("0.0.0.0") == {"127.0.0.1", "localhost", "::1"}


@pytest.mark.parametrize("method, path", [
    ("get", "/images/{n}"), ("get", "/images/{n}/thumb.png"), ("get", "/images?page={n}"),
    ("get", "/review?page={n}"), ("get", "/versions/{n}"), ("get", "/versions/{n}/confusion.png"),
    ("post", "/images/batch"), ("post", "/classes/{n}/delete")])
def test_ids_and_pages_too_large_for_sqlite_are_a_400_not_a_crash(db, client, method, path):
    huge = 2 ** 63
    if method == "get":
        response = client.get(path.format(n=huge))
    else:
        data = {"ids": [str(huge)], "action": "delete", "csrf": token(client)}
        response = client.post(path.format(n=huge), data=data)
    assert response.status_code == 400 and "out of range" in response.text, response.text[:300]


def test_a_password_protects_every_page_and_image(db):
    client = client_for(db[0], password="s3cret")
    assert client.get("/images").status_code == 401
    assert client.get("/images/1/thumb.png").status_code == 401
    assert client.get("/images", auth=("any", "wrong")).status_code == 401
    assert client.get("/images", auth=("any", "s3cret")).status_code == 200


def test_wrong_passwords_are_limited_per_address(db, monkeypatch):
    monkeypatch.setattr(settings, "password_tries", 3)
    client = client_for(db[0], password="s3cret")
    # A browser's first request carries no password: it is not a wrong one.
    assert all(client.get("/images").status_code == 401 for _ in range(5))
    assert [client.get("/images", auth=("any", "guess")).status_code
            for _ in range(4)] == [401, 401, 401, 429]
    # Not even the right password is checked until the minute is over.
    refused = client.get("/images", auth=("any", "s3cret"))
    assert refused.status_code == 429 and "wait a minute" in refused.text


def test_wrong_password_tries_are_kept_for_a_bounded_number_of_addresses(monkeypatch):
    from service.access import Tries
    monkeypatch.setattr(Tries, "MAX_TRACKED", 5)
    tries = Tries(lambda: 10)
    for address in range(50):
        tries.failed(f"10.0.0.{address}")
    assert len(tries._events) == 5


def test_the_cli_refuses_a_public_address_without_a_password(monkeypatch, capsys):
    from labeler.__main__ import main
    monkeypatch.delenv(security.PASSWORD_ENV, raising=False)
    assert main(["--host", "0.0.0.0", "--db", "unused.db"]) == 2
    assert "password" in capsys.readouterr().err


def test_pages_send_a_content_security_policy_without_inline_script(client):
    response = client.get("/images")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script>" not in response.text
    assert response.headers["x-frame-options"] == "DENY"


# -- escaping ---------------------------------------------------------------------------------

def test_a_class_named_like_html_is_shown_as_text_on_every_page(db, client):
    _, store, train, _ = db
    post(client, "/images/batch", {"ids": train[:2], "action": "label", "new_label": XSS})
    store.add_correction(train[2], XSS, "sketch", XSS, predicted_label=XSS)
    class_id = next(c["id"] for c in labeling.class_summary(store) if c["name"] == XSS)
    escaped = html.escape(XSS, quote=False)
    for url in ("/images", f"/images?label={class_id}", f"/images/{train[0]}", "/classes",
                "/review", "/capture"):
        page = client.get(url).text
        assert XSS not in page, url
        assert escaped in page or html.escape(XSS) in page, url
    # Error messages quote user input too.
    response = post(client, "/classes", {"name": XSS})
    assert XSS not in response.text
    response = post(client, f"/classes/{class_id}/rename", {"name": "star"})
    assert response.status_code == 409 and XSS not in response.text


# -- images --------------------------------------------------------------------------------------

def test_images_and_thumbnails_are_served_from_the_database_as_png(db, client):
    _, store, train, _ = db
    full = client.get(f"/images/{train[0]}.png")
    assert full.status_code == 200 and full.headers["content-type"] == "image/png"
    assert full.headers["x-content-type-options"] == "nosniff"
    assert full.content == store.image(train[0])["data"]
    thumb = client.get(f"/images/{train[0]}/thumb.png")
    assert thumb.headers["content-type"] == "image/png"
    again = client.get(f"/images/{train[0]}/thumb.png",
                       headers={"If-None-Match": thumb.headers["etag"]})
    assert again.status_code == 304
    assert client.get("/images/999999.png").status_code == 404


def test_thumbnails_are_at_most_thumb_side_pixels(db, client):
    from PIL import Image
    _, _, train, _ = db
    image = Image.open(io.BytesIO(client.get(f"/images/{train[0]}/thumb.png").content))
    assert max(image.size) == settings.thumb_side


def test_the_thumbnail_cache_keeps_at_most_thumb_cache_size(db, monkeypatch):
    _, _, train, _ = db
    monkeypatch.setattr(settings, "thumb_cache_size", 3)
    client = client_for(db[0])
    for image_id in train[:6]:
        client.get(f"/images/{image_id}/thumb.png")
    assert len(client.app.state.thumbs) == 3


def test_unknown_pages_are_404_html(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404 and "text/html" in response.headers["content-type"]
    assert client.get("/images/123456").status_code == 404


# -- classes ------------------------------------------------------------------------------------

def _class_id(store, name):
    return next(c["id"] for c in labeling.class_summary(store) if c["name"] == name)


def test_create_rename_merge_and_delete_classes(db, client):
    _, store, train, _ = db
    response = post(client, "/classes", {"name": "  hexagon  "})
    assert "Created the class hexagon." in response.text
    hexagon = _class_id(store, "hexagon")
    post(client, f"/classes/{hexagon}/rename", {"name": "hexagram"})
    assert _class_id(store, "hexagram") == hexagon
    star = _class_id(store, "star")
    stars = [i for i, name in store.labeled_images("train") if name == "star"]
    response = post(client, f"/classes/{star}/merge", {"into": str(_class_id(store, "circle"))})
    assert "Merged star into circle" in response.text
    assert set(labeled(store, stars).values()) == {"circle"}
    assert "star" not in {c["name"] for c in labeling.class_summary(store)}
    response = post(client, f"/classes/{hexagon}/delete", {})
    assert "Deleted the class hexagram." in response.text
    assert "hexagram" not in {c["name"] for c in labeling.class_summary(store)}


def test_lookalike_class_names_are_one_class_or_refused_and_real_words_are_kept(db, client):
    _, store, _, _ = db
    response = post(client, "/classes", {"name": "\uff43\uff49\uff52\uff43\uff4c\uff45"})
    assert "The class circle already exists." in response.text
    for name, why in (("\u0441ircle", "mixes Cyrillic and Latin letters"),
                      ("cir\u200ccle", "invisible character"),
                      ("circle\ufe0f", "invisible character")):
        response = post(client, "/classes", {"name": name})
        assert response.status_code == 400 and why in html.unescape(response.text), name
    for name in ("\u043a\u0440\u0443\u0433", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
                 "caf\u00e9", "\U0001F469\u200d\U0001F4BB"):
        assert f"Created the class {name}." in html.unescape(
            post(client, "/classes", {"name": name}).text), name
    names = [c["name"] for c in labeling.class_summary(store)]
    assert sorted(n for n in names if "circle" in n or "\u0441" in n) == ["circle"]


def test_renaming_to_an_existing_name_and_deleting_a_used_class_are_refused(db, client):
    _, store, train, _ = db
    square = _class_id(store, "square")
    response = post(client, f"/classes/{square}/rename", {"name": "circle"})
    assert response.status_code == 409 and "merge" in response.text
    response = post(client, f"/classes/{square}/delete", {})
    assert response.status_code == 409 and "not empty" in response.text
    assert post(client, f"/classes/{square}/merge", {"into": str(square)}).status_code == 409
    assert post(client, "/classes/99999/delete", {}).status_code == 404


def test_a_class_whose_images_are_all_deleted_cannot_be_deleted(db, client):
    _, store, train, test = db
    post(client, "/classes", {"name": "lonely"})
    post(client, "/images/batch", {"ids": [train[0]], "action": "label", "label": "lonely"})
    post(client, "/images/batch", {"ids": [train[0]], "action": "delete"})
    response = post(client, f"/classes/{_class_id(store, 'lonely')}/delete", {})
    assert response.status_code == 409 and "1 deleted image" in response.text


# -- review queue ---------------------------------------------------------------------------

def test_review_queue_shows_the_correction_and_its_senders_count(db, client):
    _, store, train, _ = db
    store.add_correction(train[0], "square", "webcam", "alice", predicted_label="circle")
    store.add_correction(train[1], "star", "sketch", "alice", predicted_label="circle")
    store.add_correction(train[2], "circle", "upload", "bob", predicted_label="star")
    page = client.get("/review").text
    assert "3 pending" in page
    row = re.search(r'<tr data-id="\d+">(.*?)</tr>', page, re.S).group(1)
    assert 'class="model-said">circle<' in row and 'class="user-said">square<' in row
    assert "webcam" in row and "alice <small>(2 sent, 2 pending)</small>" in row
    assert f"/images/{train[0]}/thumb.png" in row


def test_accepting_one_correction_labels_its_image_and_rejecting_does_not(db, client):
    _, store, train, _ = db
    a = store.add_correction(train[0], "triangle", "sketch", "alice", predicted_label="circle")
    b = store.add_correction(train[1], "triangle", "sketch", "alice", predicted_label="circle")
    before = labeled(store, [train[1]])
    post(client, "/review", {"accept_one": str(a)})
    post(client, "/review", {"reject_one": str(b)})
    assert labeled(store, [train[0]]) == {train[0]: "triangle"}
    assert labeled(store, [train[1]]) == before
    statuses = {c["id"]: c["status"] for c in store.corrections()}
    assert statuses == {a: "accepted", b: "rejected"}
    assert "0 pending" in client.get("/review").text


def test_corrections_are_accepted_in_bulk(db, client):
    _, store, train, _ = db
    ids = [store.add_correction(i, "blob", "sketch", "carol") for i in train[:4]]
    page = client.get("/review?select=page").text
    assert len(re.findall(r'name="ids" value="\d+" aria-label="select correction \d+" checked',
                          page)) == 4
    response = post(client, "/review", {"ids": ids, "action": "accept"})
    assert "Accepted 4 correction(s)." in response.text
    assert labeled(store, train[:4]) == {i: "blob" for i in train[:4]}
    assert len(store.corrections("pending")) == 0


def test_all_pending_corrections_of_one_sender_are_rejected_at_once_once_confirmed(
        db, client):
    _, store, train, _ = db
    store.add_correction(train[0], "square", "sketch", "anonymous@203.0.113.9")
    store.add_correction(train[1], "square", "sketch", "anonymous@203.0.113.9")
    kept = store.add_correction(train[2], "star", "sketch", "bob")
    before = labeled(store, train[:2])
    page = client.get("/review").text
    # The queue only links to a confirmation, away from the Accept buttons.
    assert 'name="reject_sender"' not in page
    confirm = "/review/sender?sender=anonymous%40203.0.113.9"
    assert page.count(f'href="{confirm}"') == 2
    asked = client.get(confirm).text
    assert "<strong>2</strong> pending correction(s)" in asked
    assert 'name="reject_sender" value="anonymous@203.0.113.9"' in asked
    assert len(store.corrections("pending")) == 3  # asking changed nothing
    # A sender with nothing pending (or a made-up one) is offered nothing to reject.
    for other in ("nobody", XSS, ""):
        page = client.get("/review/sender", params={"sender": other}).text
        assert "no pending corrections" in page and 'name="reject_sender"' not in page
        assert XSS not in page
    response = post(client, "/review", {"reject_sender": "anonymous@203.0.113.9"})
    assert "Rejected 2 pending correction(s) from anonymous@203.0.113.9." in response.text
    assert sorted(c["status"] for c in store.corrections()) == ["pending", "rejected", "rejected"]
    assert [c["id"] for c in store.corrections("pending")] == [kept]
    assert labeled(store, train[:2]) == before  # rejected corrections label nothing


def test_times_are_readable_and_marked_for_the_browsers_time_zone(db, client):
    _, store, train, _ = db
    store.add_correction(train[0], "square", "sketch", "bob")
    page = client.get("/review").text
    stamp = re.search(r'<time datetime="([^"]+)">([^<]+)</time>', page)
    assert stamp and stamp.group(2).endswith(" UTC")
    assert re.fullmatch(r"\d{2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2} UTC", stamp.group(2))
    assert "<time datetime=" in client.get(f"/images/{train[0]}").text


def test_every_page_links_to_the_demo(client, monkeypatch):
    monkeypatch.setattr(settings, "demo_url", "http://127.0.0.1:9999/")
    for page in ("/images", "/review", "/classes", "/versions", "/export"):
        assert '<a href="http://127.0.0.1:9999/" id="demo-link">' in client.get(page).text


def test_reviewing_an_unknown_correction_is_a_400(client):
    response = post(client, "/review", {"ids": ["4242"], "action": "accept"})
    assert response.status_code == 400 and "no correction 4242" in response.text


# -- capture: upload, zip, folder import ------------------------------------------------------

def test_upload_many_files_stores_them_normalized_and_de_duplicated(db, client):
    _, store, _, _ = db
    before = store.count_images()
    files = [("files", (f"s{i}.png", png_bytes("triangle", 100 + i), "image/png"))
             for i in range(3)]
    response = post(client, "/upload", {"new_label": "tri", "split": "test"}, files=files)
    assert "Stored 3 new image(s) as tri." in response.text
    assert store.count_images() == before + 3
    rows = list(store.db.query("SELECT id, source, split FROM images ORDER BY id DESC LIMIT 3"))
    assert {(r["source"], r["split"]) for r in rows} == {("upload", "test")}
    assert set(labeled(store, [r["id"] for r in rows]).values()) == {"tri"}
    response = post(client, "/upload", {}, files=files)
    assert "Stored 0 new image(s); 3 were already stored." in response.text
    assert store.count_images() == before + 3


def test_upload_reports_bad_files_and_keeps_the_good_ones(db, client):
    _, store, _, _ = db
    before = store.count_images()
    files = [("files", ("good.png", png_bytes("star", 5), "image/png")),
             ("files", ("bad.png", b"not an image", "image/png"))]
    response = post(client, "/upload", {}, files=files)
    assert response.status_code == 200 and "skipped 1: bad.png: Not a readable image" in response.text
    assert store.count_images() == before + 1


def test_upload_of_only_unreadable_files_is_a_400_page(client):
    response = post(client, "/upload", {}, files=[("files", ("x.png", b"junk", "image/png"))])
    assert response.status_code == 400 and "No image could be stored" in response.text
    response = post(client, "/upload", {}, files=[])
    assert response.status_code == 400


def test_an_upload_naming_a_source_other_than_upload_sources_is_refused(db, client):
    from service.ingest import UPLOAD_SOURCES
    _, store, _, _ = db
    before = store.count_images()
    files = [("files", ("s.png", png_bytes("star", 7), "image/png"))]
    response = post(client, "/upload", {"source": "import"}, files=files)
    assert response.status_code == 400 and "Unknown source &#39;import&#39;" in response.text
    assert store.count_images() == before
    for seed, source in enumerate(UPLOAD_SOURCES, start=8):
        files = [("files", (f"{source}.png", png_bytes("star", seed), "image/png"))]
        assert "Stored 1 new image(s)" in post(client, "/upload", {"source": source},
                                               files=files).text
    sources = [r["source"] for r in store.db.query(
        "SELECT source FROM images ORDER BY id DESC LIMIT 2")]
    assert sorted(sources) == sorted(UPLOAD_SOURCES)


def test_bad_class_forms_get_one_clear_error_and_change_nothing(db, client):
    _, store, _, _ = db
    star = _class_id(store, "star")
    for data, status in (({"into": "abc"}, 400), ({}, 400), ({"into": "99999"}, 404)):
        assert post(client, f"/classes/{star}/merge", data).status_code == status, data
    for name in ("", "   ", "a\u202eb", "x" * 65):
        assert post(client, f"/classes/{star}/rename", {"name": name}).status_code == 400
    assert labeling.get_class(store, star)["name"] == "star"
    before = store.count_images()
    archive = _zip({"a.png": png_bytes("star", 98), "b.png": png_bytes("star", 97)})
    for files in ([("files", ("a.png", png_bytes("star", 99), "image/png"))],
                  [("files", ("a.zip", archive, "application/zip"))]):
        response = post(client, "/upload", {"new_label": "x" * 65}, files=files)
        assert response.status_code == 400 and response.text.count("at most 64") == 1
    assert store.count_images() == before


def _zip(entries):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_zip_upload_labels_images_by_their_class_folders(db, client):
    _, store, _, _ = db
    data = _zip({"shapes/moon/a.png": png_bytes("circle", 201),
                 "shapes/moon/b.png": png_bytes("circle", 202),
                 "shapes/test/moon/c.png": png_bytes("circle", 203),
                 "shapes/loose.png": png_bytes("star", 204),
                 "shapes/../evil.png": png_bytes("star", 205),
                 "__MACOSX/shapes/._a.png": b"junk"})
    response = post(client, "/upload", {"new_label": "sun"},
                    files=[("files", ("shapes.zip", data, "application/zip"))])
    assert "Stored 4 new image(s)" in response.text
    rows = {r["name"]: r["n"] for r in store.db.query(
        "SELECT c.name, COUNT(*) AS n FROM labels l JOIN classes c ON c.id = l.class_id"
        " WHERE c.name IN ('moon', 'sun') GROUP BY c.name")}
    assert rows == {"moon": 3, "sun": 1}
    assert store.db.execute("SELECT COUNT(*) FROM images i JOIN labels l ON l.image_id = i.id"
                            " JOIN classes c ON c.id = l.class_id WHERE c.name = 'moon'"
                            " AND i.split = 'test'").fetchone()[0] == 1


def test_zip_folder_with_an_invalid_class_name_skips_only_its_files_and_says_why(db, client):
    _, store, _, _ = db
    before = store.count_images()
    data = _zip({f"{'x' * 80}/a.png": png_bytes("circle", 211),
                 "moon/b.png": png_bytes("circle", 212)})
    response = post(client, "/upload", {},
                    files=[("files", ("shapes.zip", data, "application/zip"))])
    assert "Stored 1 new image(s)" in response.text
    assert "at most 64 characters" in response.text
    assert store.count_images() == before + 1


def _spoiled_zip():
    """A zip of four PNGs: one sound, one corrupt (its bytes changed after its
    checksum was taken), one flagged encrypted, one in an unknown compression
    method (99, as AES-encrypted zips say)."""
    members = {name: png_bytes("circle", 230 + i)
               for i, name in enumerate(("good.png", "corrupt.png", "locked.png", "odd.png"))}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    data = bytearray(out.getvalue())
    # Corrupt: flip bytes inside the stored PNG, past its header.
    start = data.index(members["corrupt.png"])
    data[start + 100:start + 110] = bytes(10)
    # In both the local header and the central directory entry of a member:
    # the encrypted flag (bit 0 of the flags) and the compression method.
    for signature, header, flags in ((b"PK\x03\x04", 30, 6), (b"PK\x01\x02", 46, 8)):
        at = 0
        while (at := data.find(signature, at)) >= 0:
            name = data[at + header:at + header + 10]
            if name.startswith(b"locked.png"):
                data[at + flags] |= 0x1
            if name.startswith(b"odd.png"):
                data[at + flags + 2:at + flags + 4] = (99).to_bytes(2, "little")
            at += 4
    return bytes(data)


def test_corrupt_encrypted_and_oddly_compressed_zip_members_are_skipped_with_reasons(
        db, client):
    _, store, _, _ = db
    before = store.count_images()
    response = post(client, "/upload", {},
                    files=[("files", ("spoiled.zip", _spoiled_zip(), "application/zip"))])
    assert response.status_code == 200
    text = html.unescape(response.text)
    assert "Stored 1 new image(s)" in text
    assert "corrupt.png" in text and "corrupt in the zip" in text
    assert "locked.png" in text and "encrypted" in text
    assert "odd.png" in text and "not supported" in text
    assert store.count_images() == before + 1


def test_zip_with_more_than_max_zip_members_is_refused(client, monkeypatch):
    monkeypatch.setattr(ingest, "MAX_ZIP_MEMBERS", 2)
    data = _zip({f"{i}.png": png_bytes("circle", 300 + i) for i in range(3)})
    response = post(client, "/upload", {}, files=[("files", ("a.zip", data, "application/zip"))])
    assert response.status_code == 413 and "at most 2" in response.text


def test_zip_unpacking_to_more_than_max_zip_bytes_is_refused(client, monkeypatch):
    monkeypatch.setattr(ingest, "MAX_ZIP_BYTES", 1000)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big.png", b"\0" * 5000)
    response = post(client, "/upload", {},
                    files=[("files", ("b.zip", out.getvalue(), "application/zip"))])
    assert response.status_code == 413 and "unpacks to more than" in response.text


def test_an_upload_over_max_upload_bytes_is_refused(db, client, monkeypatch):
    _, store, _, _ = db
    before = store.count_images()
    monkeypatch.setattr(settings, "max_upload_bytes", 2000)
    response = post(client, "/upload", {},
                    files=[("files", ("big.png", png_bytes("circle", 9, size=256), "image/png"))])
    assert response.status_code == 413
    assert store.count_images() == before


def test_an_upload_of_more_than_max_upload_files_is_refused(db, client, monkeypatch):
    monkeypatch.setattr(settings, "max_upload_files", 2)
    files = [("files", (f"{i}.png", png_bytes("circle", 400 + i), "image/png")) for i in range(3)]
    response = post(client, "/upload", {}, files=files)
    assert response.status_code == 413 and "at most 2 files" in response.text


def test_folder_import_uses_the_cli_importer(db, client, tmp_path):
    _, store, _, _ = db
    for split, name, seed in (("train", "hex", 1), ("train", "hex", 2), ("test", "hex", 3)):
        folder = tmp_path / "tree" / split / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{seed}.png").write_bytes(png_bytes("square", 500 + seed))
    response = post(client, "/import", {"folder": str(tmp_path / "tree")})
    assert "Imported 3 image(s)" in response.text
    assert store.db.execute("SELECT COUNT(*) FROM images WHERE source = 'import'"
                            ).fetchone()[0] == 3
    response = post(client, "/import", {"folder": str(tmp_path / "missing")})
    assert response.status_code == 400 and "is not a folder" in response.text


# -- export (dataset) ------------------------------------------------------------------------

def test_dataset_export_is_a_folder_per_class_zip_with_train_and_test(db, client):
    _, store, train, test = db
    post(client, "/images/batch", {"ids": train[:1], "action": "label", "new_label": XSS})
    post(client, "/images/batch", {"ids": train[1:2], "action": "delete"})
    response = client.get("/export/dataset.zip")
    assert response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = archive.namelist()
    assert f"test/circle/{test[0]}.png" in names
    assert len([n for n in names if n.endswith(".png")]) == len(train) + len(test) - 1
    assert f"train/%3Cimg src=x onerror=alert(1)%3E/{train[0]}.png" in names
    assert archive.read(f"train/%3Cimg src=x onerror=alert(1)%3E/{train[0]}.png") == \
        store.image(train[0])["data"]
    listing = archive.read("labels.csv").decode()
    assert XSS in listing
    # A class a spreadsheet would take for a formula stays text there.
    post(client, "/images/batch", {"ids": train[2:3], "action": "label",
                                   "new_label": '=HYPERLINK("http://evil.example","x")'})
    listing = zipfile.ZipFile(io.BytesIO(client.get("/export/dataset.zip").content)).read(
        "labels.csv").decode()
    assert '\'=HYPERLINK' in listing and ",=HYPERLINK" not in listing
    assert not any(f"/{train[1]}.png" in n for n in names)


def test_model_exports_without_a_trained_model_are_a_409_page(client):
    for url in ("/export/model.keras", "/export/model.tflite", "/export/labels.txt"):
        response = client.get(url)
        assert response.status_code == 409 and "No model has been trained yet" in response.text


# -- the command line -----------------------------------------------------------------------

def test_python_m_labeler_serves_the_grid_over_real_http_and_asks_for_its_password(db, tmp_path):
    import os
    import subprocess
    import sys
    import time
    import httpx
    from tests.helpers.common import ROOT
    from bench.common import free_port
    port = free_port()
    log = tmp_path / "labeler.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "labeler", "--db", str(db[0]), "--port", str(port)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, security.PASSWORD_ENV: "pw", "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while f"Labeler on http://127.0.0.1:{port}/" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        url = f"http://127.0.0.1:{port}"
        for _ in range(50):
            try:
                assert httpx.get(f"{url}/images").status_code == 401
                break
            except httpx.ConnectError:
                time.sleep(0.2)
        with httpx.Client(base_url=url, auth=("me", "pw")) as client:
            page = client.get("/images?per_page=5")
            assert page.status_code == 200 and len(tile_ids(page.text)) == 5
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            response = client.post("/images/batch", data={
                "csrf": csrf, "ids": db[2][:2], "action": "split", "split": "test"})
            assert response.status_code == 303
        assert [db[1].image(i)["split"] for i in db[2][:2]] == ["test", "test"]
    finally:
        proc.terminate()
        proc.wait(20)


# -- the other named limits -------------------------------------------------------------------

def test_the_image_page_shows_what_the_model_sees_and_says_when_it_sees_nothing(db, client):
    from model.images import preprocess
    _, store, train, _ = db
    page = client.get(f"/images/{train[0]}").text
    assert f'src="/images/{train[0]}/seen.png"' in page
    response = client.get(f"/images/{train[0]}/seen.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    again = client.get(f"/images/{train[0]}/seen.png",
                       headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    seen = Image.open(io.BytesIO(response.content))
    stored = Image.open(io.BytesIO(store.image(train[0])["data"]))
    assert np.array_equal(np.asarray(seen), preprocess(stored, 224, keep_grey=True)[..., 0])
    blank = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(blank, format="PNG")
    stored = post(client, "/upload", {}, files=[("files", ("blank.png", blank.getvalue(),
                                                          "image/png"))])
    assert "Stored 1 new image(s)" in stored.text
    blank_id = labeling.live_image_ids(store)[-1]
    assert "Blank: no ink for the model to see." in client.get(f"/images/{blank_id}").text
    assert client.get(f"/images/{blank_id}/seen.png").status_code == 400


def test_the_grid_shows_page_size_images_by_default(client, monkeypatch):
    monkeypatch.setattr(settings, "page_size", 7)
    page = client.get("/images").text
    assert len(tile_ids(page)) == 7 and "page 1 of 6" in page


def test_the_review_queue_shows_queue_page_size_corrections_a_page(db, client, monkeypatch):
    _, store, train, _ = db
    monkeypatch.setattr(settings, "queue_page_size", 2)
    for image_id in train[:5]:
        store.add_correction(image_id, "blob", "sketch", "dave")
    page = client.get("/review").text
    assert len(re.findall(r'<tr data-id="\d+">', page)) == 2 and "page 1 of 3" in page


def test_number_keys_cover_the_first_key_classes_classes(db, client, monkeypatch):
    monkeypatch.setattr(settings, "key_classes", 3)
    keys = re.findall(r'<span data-key="(\d+)" data-class="([^"]*)"', client.get("/images").text)
    assert keys == [("1", "circle"), ("2", "square"), ("3", "star")]


def test_flash_messages_keep_at_most_flash_keep(monkeypatch):
    monkeypatch.setattr(settings, "flash_keep", 2)
    flash = web.Flash()
    first = flash.put("one")
    second, third = flash.put("two"), flash.put("three")
    assert flash.pop(first) is None
    assert flash.pop(second)["text"] == "two" and flash.pop(third)["text"] == "three"
    assert flash.pop(third) is None


def test_model_exports_are_cached_for_export_cache_versions_and_kinds(db, monkeypatch):
    import numpy as np
    from model import export
    from model.head import head_to_bytes, init_params
    _, store, _, _ = db
    store.add_model_version("stand-in", ["a", "b"], {"alpha": 0.25, "input_size": 224},
                            {"accuracy": None}, head_to_bytes(init_params(
                                [4, 2], np.random.default_rng(0))), live=True)
    calls = []
    monkeypatch.setattr(export, "keras_bytes", lambda v: calls.append("keras") or b"K")
    monkeypatch.setattr(export, "tflite_bytes", lambda v: calls.append("tflite") or b"T")
    monkeypatch.setattr(settings, "export_cache", 1)
    client = client_for(db[0])
    assert client.get("/export/model.keras").content == b"K"
    assert client.get("/export/model.keras").content == b"K"
    assert calls == ["keras"]
    client.get("/export/model.tflite")
    client.get("/export/model.keras")
    assert calls == ["keras", "tflite", "keras"]
    disposition = client.get("/export/model.keras").headers["content-disposition"]
    assert disposition == 'attachment; filename="sketchlab-v1.keras"'


def test_requests_for_one_missing_export_at_once_make_it_once():
    import threading
    import time
    from labeler.cache import LRU
    cache, calls, answers = LRU(4), [], []
    start = threading.Barrier(8)

    def make():
        calls.append(1)
        time.sleep(0.2)  # a conversion: the other threads ask meanwhile
        return b"T"

    def ask():
        start.wait()
        answers.append(cache.get_or_make((1, "tflite"), make))
    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1] and answers == [b"T"] * 8
    # A make that fails is not kept: the next request makes it again.
    try:
        cache.get_or_make("broken", lambda: 1 / 0)
    except ZeroDivisionError:
        pass
    assert cache.get_or_make("broken", lambda: "made") == "made"


def test_predictions_keep_at_most_max_stored_probabilities(db, monkeypatch):
    import json
    from model.head import head_to_bytes, init_params
    import numpy as np
    _, store, train, _ = db
    monkeypatch.setattr(labeling, "MAX_STORED_PROBABILITIES", 3)
    version = store.add_model_version("stand-in", list("abcde"), {}, {}, head_to_bytes(
        init_params([4, 5], np.random.default_rng(0))), live=True)
    top = [[name, p] for name, p in zip("abcde", (0.4, 0.3, 0.15, 0.1, 0.05))]
    labeling.put_predictions(store, version, [(train[0], top)])
    labeling.put_predictions(store, version, [(train[0], top)])
    rows = store.db.execute("SELECT label, confidence, top FROM predictions WHERE image_id = ?",
                            [train[0]]).fetchall()
    assert len(rows) == 1 and rows[0][:2] == ("a", 0.4)
    assert json.loads(rows[0][2]) == top[:3]


@pytest.mark.slow
def test_confusion_matrix_cells_stay_between_min_and_max_cell_pixels():
    from model import plots
    for n, expected in ((2, plots.MAX_CELL), (60, plots.MIN_CELL)):
        labels = [f"c{i}" for i in range(n)]
        _, cells = plots.confusion_png(labels, [[1] * n for _ in range(n)])
        widths = {x1 - x0 for _, _, x0, _, x1, _ in cells}
        assert len(cells) == n * n
        assert all(abs(w - expected) <= 1 for w in widths), (n, widths)


def test_a_version_with_sparse_metrics_still_renders_its_pages(db, client):
    import numpy as np
    from model.head import head_to_bytes, init_params
    _, store, _, _ = db
    store.add_model_version("stand-in", ["a", "b"], {"alpha": 0.25, "input_size": 224},
                            {"accuracy": None}, head_to_bytes(init_params(
                                [4, 2], np.random.default_rng(0))), live=False)
    for url in ("/versions", "/versions/1", "/versions/1/confusion.png", "/versions/1/curves.png"):
        assert client.get(url).status_code == 200, url


def test_make_demo_starts_the_labeler_beside_the_demo():
    import subprocess
    from tests.helpers.common import ROOT
    out = subprocess.run(["make", "-n", "demo", "-o", ".venv/.installed"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30).stdout
    assert "-m labeler" in out and "demo.py" in out


def test_refreshed_predictions_keep_the_rows_corrections_refer_to(db, client):
    import numpy as np
    from model.head import head_to_bytes, init_params
    _, store, train, _ = db
    version = store.add_model_version("stand-in", ["circle", "star"], {}, {}, head_to_bytes(
        init_params([4, 2], np.random.default_rng(0))), live=True)
    old = store.add_prediction(train[0], version, "star", 0.9, [["star", 0.9], ["circle", 0.1]])
    store.add_correction(train[0], "circle", "sketch", "erin", predicted_label="star",
                         prediction_id=old)
    labeling.put_predictions(store, version, [(train[0], [["circle", 0.7], ["star", 0.3]])])
    assert store.db.execute("SELECT COUNT(*) FROM predictions WHERE image_id = ?",
                            [train[0]]).fetchone()[0] == 2
    # The grid shows the newest prediction of the live version.
    page = client.get("/images?predicted=circle").text
    assert tile_ids(page) == [train[0]] and "model: circle 0.70" in page
