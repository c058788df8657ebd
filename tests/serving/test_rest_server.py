"""The REST front end: TF Serving's /v1/models API over raw HTTP."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.helpers import (
    FUZZ,
    LATENT,
    MAX_IMAGES,
    MAX_REQUEST_BYTES,
    _SIGNATURES,
    _code,
    _http,
    _keras,
    _request,
    _uint8,
    _z,
)


def test_rest_row_and_columnar_formats(exported, server):
    models, _ = exported
    url = f"{server.rest_url}/v1/models"
    z = _z(3, seed=4)
    expected = _keras(models["a"], z)
    # Row format, one input: instances are the z rows; predictions one image each.
    status, answer = _http(f"{url}/dcgan:predict", "POST", {"instances": z.tolist()})
    assert status == 200
    np.testing.assert_allclose(np.asarray(answer["predictions"], "float32"), expected, atol=1e-5)
    # Row format, two inputs: one object per instance.
    labels = [4, 0, 7]
    body = {"signature_name": "generate", "instances": [{"z": row, "label": c} for row, c in zip(z.tolist(), labels)]}
    status, answer = _http(f"{url}/cgan/versions/1:predict", "POST", body)
    assert status == 200
    np.testing.assert_allclose(np.asarray(answer["predictions"], "float32"),
                               _keras(models["c"], z, np.array(labels, "int32")), atol=1e-5)
    # Columnar, single input given bare; single output answered bare.
    status, answer = _http(f"{url}/dcgan:predict", "POST", {"signature_name": "generate_uint8", "inputs": z.tolist()})
    assert status == 200
    assert np.abs(np.asarray(answer["outputs"]) - _uint8(expected).astype(int)).max() <= 1
    # Columnar with scalars (the only way to send n and seed); several outputs answered as an object.
    body = {"signature_name": "sample", "inputs": {"n": 4, "seed": 11}}
    status, answer = _http(f"{url}/dcgan:predict", "POST", body)
    assert status == 200 and set(answer["outputs"]) == {"images", "z"}
    np.testing.assert_allclose(np.asarray(answer["outputs"]["images"], "float32"), models["a"].generate(4, seed=11),
                               atol=1e-5)
    # Row format of a signature with several outputs: one object per example.
    body = {"signature_name": "generate", "instances": [{"z": row, "label": 1} for row in z.tolist()]}
    status, answer = _http(f"{url}/cgan:predict", "POST", body)
    assert status == 200 and len(answer["predictions"]) == 3


def test_rest_status_metadata_and_metrics(server):
    url = f"{server.rest_url}/v1/models"
    status, answer = _http(f"{url}/dcgan")
    assert status == 200
    assert answer == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert _http(f"{url}/dcgan/versions/1")[0] == 200
    status, answer = _http(f"{url}/cgan/metadata")
    assert status == 200
    assert answer["model_spec"] == {"name": "cgan", "signature_name": "", "version": "1"}
    generate = answer["metadata"]["signature_def"]["signature_def"]["generate"]
    assert generate["inputs"]["z"]["dtype"] == "DT_FLOAT"
    assert [int(d["size"]) for d in generate["inputs"]["z"]["tensor_shape"]["dim"]] == [-1, LATENT]
    assert generate["method_name"] == "tensorflow/serving/predict"
    status, text = _http(f"{server.rest_url}/monitoring/prometheus/metrics", raw=True)
    assert status == 200
    requests = {f.name: f for f in text_string_to_metric_families(text)}[":tensorflow:serving:request_count"]
    assert any(s.labels["model_name"] == "cgan" and s.labels["status"] == "OK" for s in requests.samples)


def _rest_cases():
    z = _z(2, seed=5).tolist()
    return {
        "unknown model": ("POST", "/v1/models/nope:predict", {"instances": z}, 404, "nope"),
        "unknown version": ("POST", "/v1/models/dcgan/versions/3:predict", {"instances": z}, 404, "3"),
        "unknown model status": ("GET", "/v1/models/nope", None, 404, "nope"),
        "unknown signature": ("POST", "/v1/models/dcgan:predict", {"signature_name": "x", "instances": z}, 400,
                              "not found"),
        "malformed JSON": ("POST", "/v1/models/dcgan:predict", b"{instances: [1,", 400, "JSON"),
        "not an object": ("POST", "/v1/models/dcgan:predict", [1, 2], 400, "object"),
        "neither key": ("POST", "/v1/models/dcgan:predict", {"signature_name": "generate"}, 400, "instances"),
        "both keys": ("POST", "/v1/models/dcgan:predict", {"instances": z, "inputs": z}, 400, "both"),
        "scalars in rows": ("POST", "/v1/models/dcgan:predict",
                            {"signature_name": "sample", "instances": [{"n": 1, "seed": 0}]}, 400, "columnar"),
        "ragged": ("POST", "/v1/models/dcgan:predict", {"instances": [[1.0] * LATENT, [1.0]]}, 400, "rectangular"),
        "strings": ("POST", "/v1/models/dcgan:predict", {"inputs": {"z": [["a"] * LATENT]}}, 400, "numbers"),
        "fraction for int": ("POST", "/v1/models/dcgan:predict",
                             {"signature_name": "sample", "inputs": {"n": 1.5, "seed": 0}}, 400, "whole"),
        "too many images": ("POST", "/v1/models/dcgan:predict",
                            {"signature_name": "sample", "inputs": {"n": MAX_IMAGES + 1, "seed": 0}}, 400,
                            f"at most {MAX_IMAGES}"),
        "classify": ("POST", "/v1/models/dcgan:classify", {"examples": []}, 501, "not implemented"),
        "malformed path": ("GET", "/v1/modelz/dcgan", None, 400, "Malformed request"),
        "other path": ("GET", "/index.html", None, 404, "Not found"),
        "body too large": ("POST", "/v1/models/dcgan:predict", b"[" + b"0," * MAX_REQUEST_BYTES + b"0]", 413,
                           "at most"),
    }


@pytest.mark.parametrize("case", list(_rest_cases()))
def test_rest_errors(server, case):
    method, path, body, expected, fragment = _rest_cases()[case]
    status, answer = _http(f"{server.rest_url}{path}", method, body)
    assert status == expected, answer
    assert set(answer) == {"error"} and fragment in answer["error"]


def test_rest_chunked_body_is_refused(server):
    status, answer = _http(f"{server.rest_url}/v1/models/dcgan:predict", "POST", b"{}",
                           headers={"Transfer-Encoding": "chunked"})
    assert status == 411 and "Content-Length" in answer["error"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["z", "label", "n", "seed", "b64", "x"]), children, max_size=3),
    max_leaves=12,
)


@st.composite
def _json_bodies(draw):
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=100))
    body = {}
    for key in draw(st.lists(st.sampled_from(["instances", "inputs", "signature_name", "other"]), max_size=3,
                             unique=True)):
        body[key] = draw(_SIGNATURES if key == "signature_name" and draw(st.booleans()) else _JSON)
    return json.dumps(body).encode()


@FUZZ
@given(body=_json_bodies(), model=st.sampled_from(["dcgan", "cgan", "nope"]))
def test_malformed_json_gets_error_codes(server, body, model):
    status, answer = _http(f"{server.rest_url}/v1/models/{model}:predict", "POST", body)
    assert status in (200, 400, 404), answer
    if status != 200:
        assert set(answer) == {"error"} and answer["error"]


def test_server_still_answers_after_fuzzing(server, stubs):
    predict, _ = stubs
    assert _code(predict.Predict, _request("dcgan", z=_z(2, seed=0)))[0] == "OK"
    assert _http(f"{server.rest_url}/v1/models/dcgan")[0] == 200

