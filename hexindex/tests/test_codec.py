"""Binary encodings of the index's Redis values, without Redis."""

import h3.api.basic_int as h3
import numpy as np
import pytest

from hexindex import codec
from hexindex.cells import MAX_RES, point_cells


@pytest.mark.parametrize(
    ("lat", "lng"), [(40.6413, -73.7781), (-33.9, 151.2), (0.0, 0.0), (89.9, 179.9), (-89.9, -180)]
)
def test_chain_by_bit_arithmetic_equals_h3(lat, lng):
    cell = h3.latlng_to_cell(lat, lng, MAX_RES)
    assert codec.chain(cell) == point_cells(lat, lng)
    cells = np.array(point_cells(lat, lng)[5:], dtype=np.uint64)
    assert codec.parents(cells, 5).tolist() == [h3.cell_to_parent(int(c), 5) for c in cells]


def test_chain_fields_are_the_cells_as_8_big_endian_bytes():
    chain = point_cells(51.5, -0.12)
    fields = codec.chain_fields(chain)
    assert [int.from_bytes(f, "big") for f in fields] == chain
    assert codec.field(chain[4], codec.KIND_BOUNDARY) == fields[4] + b"b"


def test_cells_finer_than_the_anchor_go_to_their_ancestor_and_coarser_ones_to_every_descendant():
    fine = point_cells(51.5, -0.12)[7]
    assert codec.anchors(fine) == [h3.cell_to_parent(fine, codec.ANCHOR_RES)]
    coarse = point_cells(51.5, -0.12)[1]
    assert sorted(codec.anchors(coarse)) == sorted(h3.cell_to_children(coarse, codec.ANCHOR_RES))
    # A point's chain meets a coarse cell's records in its own anchor.
    assert point_cells(51.5, -0.12)[codec.ANCHOR_RES] in codec.anchors(coarse)


def test_records_have_fixed_sizes_and_big_endian_area_ids():
    assert codec.INTERIOR.itemsize == 8 and codec.BOUNDARY.itemsize == 24
    raw = codec.interior_record(0x01020304, 7)
    assert raw[:4] == b"\x01\x02\x03\x04"
    records = codec.boundary_records(42, 9, np.array([1, 2], np.uint64), np.array([3, 4], np.uint64))
    decoded = np.frombuffer(b"".join(records), codec.BOUNDARY)
    assert decoded["area"].tolist() == [42, 42] and decoded["version"].tolist() == [9, 9]
    assert decoded["inside"].tolist() == [1, 2] and decoded["crossing"].tolist() == [3, 4]


def test_state_round_trips():
    edge = [h3.latlng_to_cell(1, 2, 8), h3.latlng_to_cell(1, 3, 8)]
    state = codec.AreaState(3, 5, [h3.latlng_to_cell(1, 2, 6)], edge)
    assert codec.decode_state(codec.encode_state(state)) == state


def test_results_carry_their_version_and_price():
    assert codec.decode_result(codec.encode_result(12, 4550, b'{"id":1}')) == (12, 4550, b'{"id":1}')


def test_an_area_version_grows_whenever_geometry_or_result_changes():
    assert codec.area_version(1, 1) < codec.area_version(2, 1) < codec.area_version(2, 2)
