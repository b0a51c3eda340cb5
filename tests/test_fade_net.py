"""FadeNet and its pluggable terms: shapes, monotonicity, masking, padding, closed options."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from data_registry.errors import FadecastError
from ml.export.onnx import example_inputs
from ml.models.cycle_terms import CYCLE_TERMS, make_cycle_term
from ml.models.fade_net import FadeNet, _fit_anchor
from ml.models.time_terms import TIME_TERMS, make_time_term
from ml.windows import FEATURE_NAMES

F = len(FEATURE_NAMES)


def _inputs(**kw):
    return {k: torch.from_numpy(v) for k, v in example_inputs(F, **kw).items()}


def _run(model, x):
    with torch.no_grad():
        return model(x["history"], x["history_mask"], x["query_cycle"], x["query_hour"])


@pytest.mark.parametrize("time_term", sorted(TIME_TERMS))
@pytest.mark.parametrize("cycle_term", sorted(CYCLE_TERMS))
def test_every_variant_gives_bxhxk_and_additive_decomposition(time_term, cycle_term):
    model = FadeNet(FEATURE_NAMES, time_term=time_term, cycle_term=cycle_term, d_model=16,
                    n_heads=2, n_samples=8).eval()
    cap, lt, lc = _run(model, _inputs(batch=3, history=9, horizon=4))
    assert cap.shape == lt.shape == lc.shape == (3, 4, 8)
    assert (lt >= 0).all() and (lc >= 0).all()
    # capacity + both losses = the fresh capacity c0, the same at every horizon
    total = cap + lt + lc
    scale = 1.0 + float(lt.abs().max() + lc.abs().max())  # float32 rounding of large losses
    assert torch.allclose(total, total[:, :1].expand_as(total), atol=1e-5 * scale)
    if time_term == "none":
        assert (lt == 0).all()
    if cycle_term == "none":
        assert (lc == 0).all()


def test_options_are_closed_with_did_you_mean():
    with pytest.raises(FadecastError, match=r"Best matches are \['power'\]"):
        make_time_term("powr")
    with pytest.raises(FadecastError, match=r"'kne'.*Best matches are \['knee'"):
        make_cycle_term("kne")
    with pytest.raises(FadecastError, match="needs feature"):
        FadeNet(("retention", "c_rate"))


@given(u=st.lists(st.floats(-4, 4), min_size=3, max_size=3),
       last=st.floats(1.0, 5000.0), name=st.sampled_from(sorted(TIME_TERMS)))
@settings(max_examples=60, deadline=None)
def test_time_terms_are_monotone_and_start_at_zero(u, last, name):
    term = make_time_term(name)
    uu = torch.tensor(u[: term.n_params], dtype=torch.float64).reshape(1, 1, -1)
    hours = torch.linspace(0.0, 3.0 * last, 200, dtype=torch.float64).reshape(1, 1, -1)
    g = term(uu, hours, torch.tensor([[[last]]], dtype=torch.float64))
    assert (torch.diff(g, dim=-1) >= -1e-12).all()
    assert abs(float(g[..., 0])) < 1e-3


@given(u=st.lists(st.floats(-4, 4), min_size=3, max_size=3),
       last=st.floats(3.0, 2000.0), name=st.sampled_from(sorted(CYCLE_TERMS)))
@settings(max_examples=60, deadline=None)
def test_cycle_terms_are_monotone_and_start_near_zero(u, last, name):
    term = make_cycle_term(name)
    uu = torch.tensor(u[: term.n_params], dtype=torch.float64).reshape(1, 1, -1)
    cycles = torch.linspace(0.0, 3.0 * last, 200, dtype=torch.float64).reshape(1, 1, -1)
    g = term(uu, cycles, torch.tensor([[[last]]], dtype=torch.float64))
    assert (torch.diff(g, dim=-1) >= -1e-12).all()
    assert abs(float(g[..., 0])) < 1e-3


def test_masked_values_and_padding_rows_do_not_change_the_output():
    model = FadeNet(FEATURE_NAMES, d_model=16, n_heads=2, n_samples=8).eval()
    x = _inputs(batch=1, history=12, horizon=5)
    base = _run(model, x)
    noisy = dict(x)
    noisy["history"] = x["history"] + 50.0 * (1.0 - x["history_mask"]) * torch.randn_like(
        x["history"])
    for a, b in zip(base, _run(model, noisy)):
        assert torch.allclose(a, b, atol=1e-5)
    padded = dict(x)
    pad = torch.zeros(1, 7, F)
    padded["history"] = torch.cat([pad + 3.0, x["history"]], dim=1)  # junk values, mask 0
    padded["history_mask"] = torch.cat([pad, x["history_mask"]], dim=1)
    for a, b in zip(base, _run(model, padded)):
        assert torch.allclose(a, b, atol=1e-5)
    # an OBSERVED value does change it (the test above can fail)
    changed = dict(x)
    changed["history"] = x["history"].clone()
    changed["history"][0, -1, 0] += 1.0
    assert not torch.allclose(base[0], _run(model, changed)[0], atol=1e-4)


def test_future_losses_grow_with_query_time_and_cycle():
    model = FadeNet(FEATURE_NAMES, d_model=16, n_heads=2, n_samples=8).eval()
    x = _inputs(batch=2, history=10, horizon=30)
    _, lt, lc = _run(model, x)
    assert (torch.diff(lt, dim=1) >= -1e-7).all() and (torch.diff(lc, dim=1) >= -1e-7).all()


def test_anchor_fit_recovers_a_line_by_hand():
    basis = torch.tensor([[[0.0, 0.5, 1.0]]])
    r = 1.02 - 0.3 * basis  # c0 = 1.02, L = 0.3 exactly
    c0, loss, rmse = _fit_anchor(basis, r, torch.ones_like(r))
    assert float(c0) == pytest.approx(1.02, abs=1e-6)
    assert float(loss) == pytest.approx(0.3, abs=1e-6)
    assert float(rmse) == pytest.approx(0.0, abs=1e-6)
    rising = 0.9 + 0.1 * basis  # capacity going up: L clamps at 0, c0 = mean
    c0, loss, _ = _fit_anchor(basis, rising, torch.ones_like(r))
    assert float(loss) == 0.0 and float(c0) == pytest.approx(0.95, abs=1e-6)


def test_fixed_draws_make_forward_deterministic():
    a = FadeNet(FEATURE_NAMES, d_model=16, n_heads=2, n_samples=8, seed=3).eval()
    b = FadeNet(FEATURE_NAMES, d_model=16, n_heads=2, n_samples=8, seed=3).eval()
    x = _inputs(batch=1, history=6, horizon=3)
    assert all(torch.equal(p, q) for p, q in zip(_run(a, x), _run(b, x)))
    assert np.isclose(a.noise.numpy().mean(axis=0), 0.0, atol=1e-5).all()


def test_ensemble_pools_member_samples():
    from ml.models.ensemble import FadeEnsemble

    members = [FadeNet(FEATURE_NAMES, d_model=16, n_heads=2, n_samples=8, seed=s).eval()
               for s in (0, 1)]
    ens = FadeEnsemble(members).eval()
    x = _inputs(batch=2, history=7, horizon=3)
    pooled = _run(ens, x)
    assert ens.n_samples == 16 and pooled[0].shape == (2, 3, 16)
    for i in range(3):
        assert torch.equal(pooled[i][..., :8], _run(members[0], x)[i])
        assert torch.equal(pooled[i][..., 8:], _run(members[1], x)[i])
    assert not ens.is_fitted_
    assert ens.config()["ensemble"] == 2
    with pytest.raises(FadecastError, match="at least one member"):
        FadeEnsemble([])


def test_absurd_histories_still_give_finite_output():
    """Regression guard for the case serving's property test found on an earlier FadeNet
    (retention jumping to 128x the reference within seconds of clock gave NaN), run through
    the whole inference path, plus extreme raw inputs and head outputs."""
    from ml.export.card import build_card
    from ml.inference import forecast
    from ml.synthetic import make_fleet
    from ml.training.dataset import fit_scaler, prepare_cells
    from ml.training.quality import torch_runner
    from ml.windows import WindowSpec

    cells = prepare_cells(make_fleet(4, seed=0))
    model = FadeNet(FEATURE_NAMES, cycle_term="knee", d_model=16, n_heads=2, n_samples=8).eval()
    scaler = fit_scaler(cells)
    model.set_scaler(scaler)
    card = build_card(model, scaler, WindowSpec(16), train_cells=cells, conformal={},
                      dataset_hash="")
    rows = [{"cycle_index": i + 1, "test_time_second": float(max(0, i - 3)),
             "discharge_capacity_ah": q} for i, q in enumerate([0.015625] * 3 + [1.0] * 4 + [2.0])]
    out = forecast(rows, card=card, run=torch_runner(model), horizon_cycles=2, eol_fraction=0.5)
    for row in out["forecast"]:
        assert all(np.isfinite(v) for v in row["capacity_ah"].values())
    with torch.no_grad():
        model.head[-1].bias.fill_(1e30)
    x = _inputs(batch=1, history=8, horizon=2)
    x["history"] = x["history"] * 1e6
    for out in _run(model, x):
        assert torch.isfinite(out).all()
