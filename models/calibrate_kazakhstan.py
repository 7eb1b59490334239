"""Calibrate the Kazakhstan regional model on 2010-2018 and report the hindcast fit.

Usage (from the repository root)::

    python models/calibrate_kazakhstan.py            # calibrate, rebuild both .mdl, report fit
    python models/calibrate_kazakhstan.py --report   # only report the fit of the current files

Calibration runs the generated ``kazakhstan_regions_hindcast.mdl`` itself through PySD (no
re-implementation), starting from 2010 statistics. Trend parameters are fitted, each by a
damped fixed-point step on the log-ratio of data to simulation over the calibration window
2010-2018 (slope through the origin of ``ln(data/sim)`` against ``t - 2010``). Trends that
switch regime at ``build_model.TFP_BREAK_YEAR`` (2014, fixed from the design notes' World Bank
source, not fitted) get one rate before the break (slope over 2010-2014) and one after (slope
over 2015-2018 of the ratio relative to its 2014 value):

* ``external migration rate[Region]`` and ``... before break``: population (international
  migration and residual);
* ``TFP growth rate[Region]`` and ``... before break`` (= ``resource rent growth rate``): real
  GRP;
* ``labour force participation trend[Region]``: employment (one rate);
* ``employment elasticity`` (national): the regional unemployment rates (deviations from each
  year's regional mean), by
  ``scipy.optimize.minimize_scalar`` with the trends re-fitted at each value;
* ``emission intensity decline rate[Region]``: emissions, one rate per region over 2010-2018,
  plus one national shift before the break from the national total (regional 4-5-year regimes
  would fit noise);
* ``investment allocation elasticity`` theta_I (national): regional investment shares 2011-2018,
  by ``scipy.optimize.minimize_scalar`` (each evaluation re-renders the hindcast, because the
  base-year location factors depend on theta_I).

Levels are not fitted: every base-year level is reproduced by construction (build_model.py).
The window 2019-2022 is out of sample for the hindcast. The same fit is then repeated on the
full period 2010-2021 for the forecast's parameters (design notes 6.2); 2022 is left out because
of the census re-basing of population and the new emission coverage.

The fit report (MAPE, RMSPE, Theil's U1 and the Sterman (1984) decomposition U^M, U^S, U^C per
series and region) goes to ``models/data/hindcast_fit.csv`` and ``models/hindcast_fit.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import build_model as bm  # noqa: E402

from sd_model import metrics  # noqa: E402

CAL_YEARS = list(range(2010, 2019))
TEST_YEARS = list(range(2019, 2023))
BREAK = bm.TFP_BREAK_YEAR
# Forecast parameters are re-fitted on the full period (design notes 6.2). It ends in 2021:
# BNS re-based the 2022 population on the 2021 census (+3.3 % nationally in one year) and the
# 2022 emissions on the new Environmental Code (small emitters dropped).
FULL_YEARS = list(range(2010, 2022))
SERIES = {
    "population": "Population",
    "employment": "Employment",
    "grp_real": "GRP",
    "emissions": "Emissions",
    "unemployment_rate": "Unemployment Rate",
}
OUTPUTS = list(dict.fromkeys([*SERIES.values(), "Net Migration", "Labour Force"]))


def load_pysd(mdl: Path):
    """Translate a copy of ``mdl`` in a temporary folder (never writes next to models/)."""
    import pysd

    tmp = Path(tempfile.mkdtemp(prefix="kz_calib_"))
    shutil.copy(mdl, tmp / mdl.name)
    return pysd.read_vensim(str(tmp / mdl.name))


def _vec(values: np.ndarray) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, float), {"Region": bm.NAMES}, ["Region"])


def simulate(model, params: dict) -> dict[str, pd.DataFrame]:
    """Run the hindcast and return {model variable: DataFrame(year x region code)}."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model.run(params=params, return_columns=OUTPUTS)
    res = {}
    for var in OUTPUTS:
        cols = [f"{var}[{n}]" for n in bm.NAMES]
        df = out[cols].copy()
        df.columns = bm.CODES
        df.index = df.index.astype(int)
        res[var] = df
    return res


def observed() -> dict[str, pd.DataFrame]:
    """Harmonised data as {series: DataFrame(year x region code)}."""
    return {k: bm.series(k).T.reindex(bm.YEARS) for k in [*SERIES, "migration_net"]}


def _slope(ratio: pd.DataFrame, years: list[int], base: int = 2010) -> np.ndarray:
    """Least-squares slope through the origin of ln(ratio) on (t - base), NaN-aware."""
    r = np.log(ratio.loc[[y for y in years if y in ratio.index]])
    t = np.asarray(r.index, float)[:, None] - base
    mask = r.notna().to_numpy()
    num = np.where(mask, r.to_numpy() * t, 0.0).sum(axis=0)
    den = np.where(mask, t**2, 0.0).sum(axis=0)
    return num / den


def _hindcast_model(theta: float):
    """Render the hindcast with allocation elasticity ``theta`` into a temp dir and load it."""
    b = bm.base_inputs(2010)
    b.investment_elasticity = theta
    tmp = Path(tempfile.mkdtemp(prefix="kz_calib_")) / "hindcast.mdl"
    tmp.write_text(bm.render_model(b), encoding="utf-8")
    import pysd

    return pysd.read_vensim(str(tmp))


def _params(p: dict) -> dict:
    return {
        "external migration rate": _vec(p["external migration rate"]),
        "external migration rate before break": _vec(p["external migration rate before break"]),
        "TFP growth rate": _vec(p["TFP growth rate"]),
        "resource rent growth rate": _vec(p["TFP growth rate"]),
        "TFP growth rate before break": _vec(p["TFP growth rate before break"]),
        "resource rent growth rate before break": _vec(p["TFP growth rate before break"]),
        "labour force participation trend": _vec(p["labour force participation trend"]),
        "emission intensity decline rate": _vec(p["emission intensity decline rate"]),
        "emission decline shift before break": p["emission decline shift before break"],
        "employment elasticity": p["employment elasticity"],
    }


def _fit_trends(
    model, p: dict, obs: dict, n_iter: int, damping: float, years: list[int] = CAL_YEARS
) -> dict:
    """Damped fixed-point iterations on the trend parameters over ``years`` (see the module
    docstring); the rates before the break use the years up to it, those after the rest."""
    eta = p["employment elasticity"]
    early = [y for y in years if y <= BREAK]
    late = [y for y in years if y > BREAK]
    for it in range(n_iter):
        sim = simulate(model, _params(p))
        pop_ratio = obs["population"] / sim["Population"]
        s_pop_early = _slope(pop_ratio, early)
        s_pop = _slope(pop_ratio / pop_ratio.loc[BREAK], late, base=BREAK)
        grp_ratio = obs["grp_real"] / sim["GRP"]
        s_grp_early = _slope(grp_ratio, early)
        # After the break: the slope of the ratio relative to its break-year value.
        s_grp = _slope(grp_ratio / grp_ratio.loc[BREAK], late, base=BREAK)
        s_emp = _slope(obs["employment"] / sim["Employment"], years)
        # Emissions: one rate per region over the whole window, plus one national shift
        # before the break (regional 4-5-point regimes would fit noise: Atyrau 2016-18).
        s_em = _slope(obs["emissions"] / sim["Emissions"], years)
        full = obs["emissions"].notna().all().to_numpy()
        nat = obs["emissions"].loc[:, full].sum(axis=1) / sim["Emissions"].loc[:, full].sum(axis=1)
        nat_df = nat.to_frame()
        s_shift = float(
            _slope(nat_df, early)[0] - _slope(nat_df / nat_df.loc[BREAK], late, base=BREAK)[0]
        )
        p["external migration rate"] = p["external migration rate"] + damping * s_pop
        p["external migration rate before break"] = (
            p["external migration rate before break"] + damping * s_pop_early
        )
        p["TFP growth rate"] = p["TFP growth rate"] + damping * s_grp
        p["TFP growth rate before break"] = (
            p["TFP growth rate before break"] + damping * s_grp_early
        )
        p["labour force participation trend"] = p[
            "labour force participation trend"
        ] + damping * s_emp / (1 - eta)
        p["emission intensity decline rate"] = p["emission intensity decline rate"] - damping * s_em
        p["emission decline shift before break"] -= damping * s_shift
        worst = {
            "population": np.abs(np.r_[s_pop, s_pop_early]).max(),
            "GRP": np.abs(np.r_[s_grp, s_grp_early]).max(),
            "employment": np.abs(s_emp).max(),
            "emissions": np.abs(np.r_[s_em, s_shift]).max(),
        }
        print(
            f"  iteration {it}: max |slope| " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items())
        )
    return p


def _investment_share_error(
    theta: float, p: dict, obs_share: pd.DataFrame, years: list[int] = CAL_YEARS
) -> float:
    """Sum of squared log errors of simulated vs observed investment shares (from 2011)."""
    model = _hindcast_model(theta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model.run(params=_params(p), return_columns=["Investment Share"])
    sim = out[[f"Investment Share[{n}]" for n in bm.NAMES]]
    sim.columns = bm.CODES
    sim.index = sim.index.astype(int)
    years = [y for y in years if y > 2010]
    err = float((np.log(sim.loc[years] / obs_share.loc[years]) ** 2).to_numpy().sum())
    print(f"  theta_I = {theta:.3f}: investment-share SSE {err:.3f}")
    return err


def _unemployment_error(eta: float, model, p: dict, obs: dict, years: list[int]) -> float:
    """Squared errors of the regional unemployment rates' deviations from each year's mean
    across regions, over ``years``, at employment elasticity ``eta``, after re-fitting the
    trends (warm start from ``p``, which is updated).

    Deviations, because ``eta`` governs how far regions drift apart; the national level (the
    LFS rate fell from 5.8 % to 4.8 % over 2010-2014 in every region) is not its business.
    """
    q = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in p.items()}
    q["employment elasticity"] = eta
    with contextlib.redirect_stdout(io.StringIO()):
        q = _fit_trends(model, q, obs, 6, 0.8, years)
    sim = simulate(model, _params(q))
    u = (1 - sim["Employment"] / sim["Labour Force"]).loc[years]
    if not np.isfinite(u.to_numpy()).all():
        raise RuntimeError(f"non-finite simulated unemployment at employment elasticity {eta}")
    a = obs["unemployment_rate"].reindex(years).dropna(how="all")
    u = u.loc[a.index]
    dev = (u.sub(u.mean(axis=1), axis=0) - a.sub(a.mean(axis=1), axis=0)).to_numpy()
    err = float(np.nansum(dev**2))
    print(f"  employment elasticity = {eta:.3f}: regional deviation SSE {err * 1e4:.2f} pp^2")
    p.update(q)
    return err


def _calibrate_window(
    years: list[int], obs: dict, obs_share: pd.DataFrame, n_iter: int, damping: float
) -> tuple[dict, float]:
    """Trend parameters and theta_I fitted on ``years``."""
    from scipy.optimize import minimize_scalar

    p = {
        "external migration rate": np.zeros(20),
        "external migration rate before break": np.zeros(20),
        "TFP growth rate": np.full(20, bm.prior("TFP growth prior")),
        "TFP growth rate before break": np.full(20, bm.prior("TFP growth prior")),
        "labour force participation trend": np.zeros(20),
        "emission intensity decline rate": np.full(20, bm.prior("emission intensity decline rate")),
        "emission decline shift before break": 0.0,
        "employment elasticity": bm.prior("employment elasticity"),
    }
    theta = bm.prior("investment allocation elasticity")
    label = f"window {years[0]}-{years[-1]}"
    print(f"{label}: trend fit at the prior theta_I = {theta}")
    p = _fit_trends(_hindcast_model(theta), p, obs, n_iter, damping, years)
    # theta_I and the employment elasticity (an assumption [A], prior 0.5) are searched in
    # turn, twice; the trends are re-fitted after each search (and for every elasticity).
    for _ in range(2):
        res = minimize_scalar(
            _investment_share_error,
            bounds=(0.0, 4.0),
            method="bounded",
            args=(p, obs_share, years),
            options={"xatol": 0.05},
        )
        theta = float(res.x)
        model = _hindcast_model(theta)
        res = minimize_scalar(
            _unemployment_error,
            bounds=(0.005, 1.0),
            method="bounded",
            args=(model, p, obs, years),
            options={"xatol": 0.005},
        )
        p["employment elasticity"] = float(res.x)
        print(
            f"{label}: trend fit at theta_I = {theta:.3f}, employment elasticity = "
            f"{p['employment elasticity']:.3f}"
        )
        p = _fit_trends(model, p, obs, n_iter, damping, years)
    return p, theta


# What the forecast model reads from the full-period fit (build_model.load_calibration); the
# other full-period values are kept for comparison only. The hindcast reads all of its fit
# except the national emission rate.
FORECAST_READS = {
    "employment elasticity",
    "external migration rate",
    "investment allocation elasticity",
    "national emission decline rate",
}


def _rows(p: dict, theta: float, years: list[int], obs: dict, use: str) -> list[dict]:
    """Table rows for one calibration window; ``used_by`` is "none" where the model named by
    ``use`` does not read the value."""
    window = f"{years[0]}-{years[-1]}"
    last = years[-1]
    # The post-break rates, weighted by emissions at the end of the calibration window.
    em = obs["emissions"].loc[last].to_numpy()
    national_em = float((p["emission intensity decline rate"] * em).sum() / em.sum())
    src = f"calibrate_kazakhstan.py: fixed-point fit on {window} (hindcast .mdl run in PySD)"
    rows = []

    def add(name, region, code, value, unit, source):
        if use == "forecast":
            reads = name in FORECAST_READS
        else:
            reads = name != "national emission decline rate"
        rows.append(
            {
                "parameter": name,
                "window": window,
                "used_by": use if reads else "none",
                "region": region,
                "region_code": code,
                "value": value,
                "unit": unit,
                "source": source,
            }
        )

    regional = (
        "external migration rate",
        "external migration rate before break",
        "TFP growth rate",
        "TFP growth rate before break",
        "labour force participation trend",
        "emission intensity decline rate",
    )
    for name in regional:
        for n, c, v in zip(bm.NAMES, bm.CODES, p[name], strict=True):
            add(name, n, c, v, "1/Year", src)
    for rent, tfp in (
        ("resource rent growth rate", "TFP growth rate"),
        ("resource rent growth rate before break", "TFP growth rate before break"),
    ):
        for n, c, v in zip(bm.NAMES, bm.CODES, p[tfp], strict=True):
            add(rent, n, c, v, "1/Year", f"{src} (= {tfp})")
    add(
        "employment elasticity",
        None,
        None,
        p["employment elasticity"],
        "Dmnl",
        f"calibrate_kazakhstan.py: scipy minimize_scalar on the regional unemployment rates "
        f"{window} (SSE of deviations from each year's regional mean, trends re-fitted at each "
        "value); prior 0.5 [A]",
    )
    add(
        "emission decline shift before break",
        None,
        None,
        p["emission decline shift before break"],
        "1/Year",
        src + " (national total)",
    )
    add(
        "investment allocation elasticity",
        None,
        None,
        theta,
        "Dmnl",
        f"calibrate_kazakhstan.py: scipy minimize_scalar on 2011-{last} regional non-resource "
        "investment shares (log SSE)",
    )
    add(
        "national emission decline rate",
        None,
        None,
        national_em,
        "1/Year",
        f"{last}-emissions-weighted mean of the regional post-break rates (the forecast's "
        "rate for every region)",
    )
    return rows


def calibrate(n_iter: int = 8, damping: float = 0.8) -> pd.DataFrame:
    """Fit on 2010-2018 for the hindcast and on 2010-2021 for the forecast; save and rebuild."""
    obs = observed()
    share = np.array([bm.RESOURCE_SHARES.get(c, 0.0) for c in bm.CODES])
    inv = bm.series("investment_real").T.reindex(bm.YEARS) * (1 - share)
    obs_share = inv.div(inv.sum(axis=1), axis=0)
    rows = []
    for years, use in ((CAL_YEARS, "hindcast"), (FULL_YEARS, "forecast")):
        p, theta = _calibrate_window(years, obs, obs_share, n_iter, damping)
        rows += _rows(p, theta, years, obs, use)
    table = pd.DataFrame(rows)
    table.to_csv(bm.DATA / "calibrated_parameters.csv", index=False)
    bm.build()
    return table


def fit_report() -> pd.DataFrame:
    """Fit statistics of the current hindcast .mdl per series, region and window."""
    model = load_pysd(HERE / "kazakhstan_regions_hindcast.mdl")
    sim = simulate(model, {})
    obs = observed()
    rows = []
    for key, var in SERIES.items():
        windows = [("calibration 2010-2018", CAL_YEARS), ("test 2019-2022", TEST_YEARS)]
        if key == "population":
            # The 2021 census re-based BNS's 2022 population (national +3.3% in one year).
            windows.append(("test 2019-2021 (before census re-basing)", TEST_YEARS[:-1]))
        if key == "emissions":
            # The 2022 Environmental Code dropped small emitters from the statistics.
            windows.append(("test 2019-2021 (before the coverage change)", TEST_YEARS[:-1]))
        for window, years in windows:
            a = obs[key].reindex(years)
            s = sim[var].reindex(years)
            mp = metrics.mape(s.to_numpy(), a.to_numpy(), axis=0)
            rm = metrics.rmspe(s.to_numpy(), a.to_numpy(), axis=0)
            u1 = metrics.theil_u1(s.to_numpy(), a.to_numpy(), axis=0)
            dec = metrics.theil_u_decomposition(s.to_numpy(), a.to_numpy(), axis=0)
            for i, (n, c) in enumerate(bm.REGIONS):
                rows.append(
                    {
                        "series": key,
                        "window": window,
                        "region": n,
                        "region_code": c,
                        "mape_pct": mp[i],
                        "rmspe_pct": rm[i],
                        "theil_u1": u1[i],
                        "mse": dec["mse"][i],
                        "um": dec["um"][i],
                        "us": dec["us"][i],
                        "uc": dec["uc"][i],
                    }
                )
            if key == "unemployment_rate":
                # National rates: weighted by the labour force (observed: employed / (1 - u)).
                lf_s = sim["Labour Force"].reindex(years)
                lf_a = obs["employment"].reindex(years) / (1 - a)
                tot_s = ((s * lf_s).sum(axis=1) / lf_s.sum(axis=1)).to_numpy()
                tot_a = ((a * lf_a).sum(axis=1, min_count=20) / lf_a.sum(axis=1)).to_numpy()
            else:
                tot_s, tot_a = s.sum(axis=1).to_numpy(), a.sum(axis=1).to_numpy()
            if a.notna().all(axis=1).any():
                ok = a.notna().all(axis=1).to_numpy()
                d = metrics.theil_u_decomposition(tot_s[ok], tot_a[ok])
                rows.append(
                    {
                        "series": key,
                        "window": window,
                        "region": "Kazakhstan (national)",
                        "region_code": "KZ",
                        "mape_pct": metrics.mape(tot_s[ok], tot_a[ok]),
                        "rmspe_pct": metrics.rmspe(tot_s[ok], tot_a[ok]),
                        "theil_u1": metrics.theil_u1(tot_s[ok], tot_a[ok]),
                        "mse": d["mse"],
                        "um": d["um"],
                        "us": d["us"],
                        "uc": d["uc"],
                    }
                )
    fit = pd.DataFrame(rows)
    fit["source"] = (
        "calibrate_kazakhstan.py: kazakhstan_regions_hindcast.mdl (PySD, Euler dt 0.25) vs "
        "harmonised_series.csv; MAPE/RMSPE in %, MSE in the series' units squared"
    )
    for col in ("mape_pct", "rmspe_pct", "theil_u1", "mse", "um", "us", "uc"):
        fit[col] = fit[col].astype(float)
    fit.to_csv(bm.DATA / "hindcast_fit.csv", index=False, float_format="%.6g")

    sim_nm = sim["Net Migration"].loc[2022]
    obs_nm = obs["migration_net"].loc[2022]
    signs = pd.DataFrame(
        {"region": bm.NAMES, "observed": obs_nm.to_numpy(), "simulated": sim_nm.to_numpy()}
    )
    signs["sign_right"] = np.sign(signs.observed) == np.sign(signs.simulated)
    _write_markdown(fit, signs)
    return fit


def _write_markdown(fit: pd.DataFrame, signs: pd.DataFrame) -> None:
    lines = ["# Hindcast fit (generated by models/calibrate_kazakhstan.py)", ""]
    lines.append(
        "Simulated with PySD's Euler at the model file's TIME STEP 0.25 (RK45 differs in the "
        "second digit: see models/README.md). Summary: median and worst regional MAPE (%) per "
        "series and window, and the national total."
    )
    lines.append("")
    lines.append(
        "| series | window | median MAPE | worst MAPE (region) | national MAPE | "
        "national U^M / U^S / U^C |"
    )
    lines.append("|---|---|---|---|---|---|")
    for (series, window), g in fit.groupby(["series", "window"], sort=False):
        reg = g[g.region_code != "KZ"]
        nat = g[g.region_code == "KZ"].iloc[0]
        worst = reg.loc[reg.mape_pct.idxmax()]
        lines.append(
            f"| {series} | {window} | {reg.mape_pct.median():.2f} | {worst.mape_pct:.2f} "
            f"({worst.region}) | {nat.mape_pct:.2f} | {nat.um:.2f} / {nat.us:.2f} / "
            f"{nat.uc:.2f} |"
        )
    lines += ["", "## Per region (test window 2019-2022: MAPE % and U^M / U^S / U^C)", ""]
    header = "| region | " + " | ".join(SERIES) + " |"
    lines += [header, "|---" * (len(SERIES) + 1) + "|"]
    test = fit[fit.window == "test 2019-2022"]
    for n in [*bm.NAMES, "Kazakhstan (national)"]:
        cells = []
        for key in SERIES:
            r = test[(test.series == key) & (test.region == n)].iloc[0]
            cells.append(f"{r.mape_pct:.1f} ({r.um:.2f}/{r.us:.2f}/{r.uc:.2f})")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "## Per region (calibration window 2010-2018: MAPE %)", ""]
    lines += [header, "|---" * (len(SERIES) + 1) + "|"]
    cal = fit[fit.window.str.startswith("calibration")]
    for n in [*bm.NAMES, "Kazakhstan (national)"]:
        cells = [
            f"{cal[(cal.series == k) & (cal.region == n)].iloc[0].mape_pct:.1f}" for k in SERIES
        ]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    from scipy.stats import spearmanr

    n_right = int(signs.sign_right.sum())
    rho = float(spearmanr(signs.observed, signs.simulated).statistic)
    mae = float((signs.simulated - signs.observed).abs().mean())
    lines += [
        "",
        f"## Sign of 2022 net inter-regional migration: right in {n_right} of 20 regions",
        "",
        f"Rank correlation (Spearman) of simulated and observed 2022 net migration across the 20 "
        f"regions: {rho:.2f} (design-notes target > 0.8); mean absolute error {mae:,.0f} "
        "persons/year. Migration data exist for 2022 only, "
        "so this check is not out of sample: the O-D model's fixed effects and departure rates "
        "come from 2022, and the check asks whether the simulated 2022 state of the regions "
        "(income, unemployment, services, pollution) is close enough to the real one.",
        "",
        "| region | observed | simulated | sign right |",
        "|---|---|---|---|",
    ]
    for r in signs.itertuples():
        lines.append(
            f"| {r.region} | {r.observed:,.0f} | {r.simulated:,.0f} | "
            f"{'yes' if r.sign_right else 'no'} |"
        )
    (HERE / "hindcast_fit.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    body = "\n".join(lines[2:]).replace("\n## ", "\n#### ") + "\n"
    bm.update_readme("HINDCAST", body)
    bm.update_readme("CALIBRATION", calibration_table())


def calibration_table() -> str:
    """Markdown tables of models/data/calibrated_parameters.csv."""
    cal = pd.read_csv(bm.DATA / "calibrated_parameters.csv")
    hind = cal[cal.used_by == "hindcast"]
    fore = cal[cal.used_by == "forecast"]
    reg = hind[hind.region_code.notna()].pivot_table(
        index="region", columns="parameter", values="value", sort=False
    )
    fore_reg = fore[fore.region_code.notna()].pivot_table(
        index="region", columns="parameter", values="value", sort=False
    )
    cols = [
        "TFP growth rate before break",
        "TFP growth rate",
        "external migration rate before break",
        "external migration rate",
        "labour force participation trend",
        "emission intensity decline rate",
    ]
    lines = [
        "Hindcast parameters (fitted on 2010-2018), and the forecast's external migration rate "
        "(fitted on 2010-2021, after the break):",
        "",
        "| region | " + " | ".join(cols) + " | forecast: external migration rate |",
        "|---" * (len(cols) + 2) + "|",
    ]
    for name in bm.NAMES:
        cells = [f"{reg.loc[name, c]:+.4f}" for c in cols]
        cells.append(f"{fore_reg.loc[name, 'external migration rate']:+.4f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| national parameter | used by | window | value | unit | source |",
        "|---|---|---|---|---|---|",
    ]
    for r in cal[cal.region_code.isna()].itertuples():
        lines.append(
            f"| {r.parameter} | {r.used_by} | {r.window} | {r.value:.4g} | {r.unit} | {r.source} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="only report the current fit")
    parser.add_argument("--iterations", type=int, default=8)
    args = parser.parse_args()
    if not args.report:
        calibrate(args.iterations)
    fit = fit_report()
    regional = fit[fit.region_code != "KZ"]
    summary = regional.groupby(["series", "window"], sort=False).mape_pct.median()
    print("median regional MAPE (%):")
    print(summary.to_string())
    print(f"wrote {HERE / 'hindcast_fit.md'}")


if __name__ == "__main__":
    main()
