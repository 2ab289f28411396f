"""Prototxt front end: the example file parses, runs, and bad files name their line."""
import re
from pathlib import Path

import pytest
import torch

from workbench.tune.network import GraphModel
from workbench.tune.prototxt import PrototxtError, from_prototxt, load_prototxt, parse, tokenize

DATA = Path(__file__).parent / "data"


def test_tokenizer_and_parser_handle_comments_strings_and_nesting():
    msg = parse('name: "a\\"b"  # comment\nx { y: 3 z: -1.5e2 flag: true e: MAX }\nx { y: 4 }')
    assert msg.get("name") == 'a"b'
    xs = msg.all("x")
    assert [x.get("y") for x in xs] == [3, 4]
    assert xs[0].get("z") == -150.0 and xs[0].get("flag") is True and xs[0].get("e") == "MAX"
    assert [t[2] for t in tokenize('a: 1\n\nb: "x"')] == [1, 1, 1, 3, 3, 3]


def test_example_resnet8_modules_and_shapes():
    net = load_prototxt(DATA / "resnet8.prototxt")
    assert net.name == "resnet8" and net.input_shape == (3, 32, 32)
    assert net.modules == ("res2a", "res3a", "res4a")
    # only the first conv of each module is prunable; the last conv and the shortcut stay
    assert {m: [p.conv for p in v] for m, v in net.prunable().items()} == {
        "res2a": ["res2a_branch2a"], "res3a": ["res3a_branch2a"], "res4a": ["res4a_branch2a"]}
    out = GraphModel(net).eval()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)


@pytest.mark.parametrize("text, line, words", [
    ('layer { name: "a" type: "Input" top: "d" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n'
     'layer { name: "c" type: "Convolution" bottom: "d" top: "c"\n'
     '  convolution_param { num_output: 4 kernel_size: 3 } }\n'
     'layer { name: "p" type: "LRN" bottom: "c" top: "p" }', 4, "unsupported type 'LRN'"),
    ('layer { name: "a" type: "Input" top: "d" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n'
     'layer { name: "c" type: "Convolution" bottom: "nope" top: "c"\n'
     '  convolution_param { num_output: 4 kernel_size: 3 } }', 2, "no earlier layer writes"),
    ('layer { name: "a" type: "Input" top: "d"\n  input_param { shape { dim: 1 dim: 3 } }\n}', 2,
     "four positive dims"),
    ('layer { name: "a"\n  type: "Input" top: "d" \n\n  input_param { shape { dim: 1 ', 4, "never closed"),
    ('input: "d"\ninput_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n'
     'layer { name: "c" type: "Convolution" bottom: "d" top: "c"\n'
     '  convolution_param { num_output: "four" } }', 4, "should be an integer"),
    ('name: "x" $', 1, "unexpected character"),
])
def test_errors_name_the_line(text, line, words):
    with pytest.raises(PrototxtError, match=re.escape(words)) as e:
        from_prototxt(text, "bad.prototxt")
    assert f"line {line}" in str(e.value) and "bad.prototxt" in str(e.value)


def test_module_must_be_contiguous():
    text = (DATA / "resnet8.prototxt").read_text().replace(
        'name: "fc10" type: "InnerProduct"', 'name: "fc10" module: "res2a" type: "InnerProduct"')
    with pytest.raises(PrototxtError, match='module "res2a" is not contiguous'):
        from_prototxt(text)


def test_nothing_in_the_file_is_executed(tmp_path):
    marker = tmp_path / "pwned"
    text = (DATA / "resnet8.prototxt").read_text().replace(
        'name: "resnet8"', f'name: "x\\"); open({str(marker)!r}, \\"w\\"); (\\""')
    from workbench.tune.multiplex import generate, write_multiplex, load_multiplex
    net = from_prototxt(text)
    path = write_multiplex(net, tmp_path / "m.py")
    mux = load_multiplex(path)
    assert not marker.exists() and mux.SOURCE == net.name
    assert "open(" in net.name and "open(" not in generate(net).replace(repr(net.name), "")
