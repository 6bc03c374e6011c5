#!/usr/bin/env python3
"""Read an `mdn` model file and use it from Python, with the standard library
alone (no numpy, torch or safetensors package needed).

It is the model-file contract of DESIGN.md §2 written out as code: the
safetensors layout, the `nn.Linear` tensors `layers.{i}.weight` ([out, in])
and `layers.{i}.bias`, tanh hidden layers, z-scored inputs and targets, and
the head layouts (diagonal mixture `[logits | mu | log_sigma]`, full
covariance `[logits | mu | chol]`, MSE). `tests/python_reader.rs` checks it
against `mdn predict` and `mdn eval`, so it is also a reference for porting
a model to another stack (the README shows the same network in PyTorch).

As a library:

    from mdn_model import load
    model = load("model.safetensors")
    mix = model.mixture([0.5])        # components in the data's units
    mix.mean(), mix.quantile(0.05), mix.mode(), mix.log_pdf([0.3])

As a command, the CSV `mdn predict` writes (same columns, same order):

    python3 mdn_model.py model.safetensors data.csv [--point mean,median,mode]
        [--quantiles 0.05,0.95] [--nll]

`--nll` prints the mean negative log-likelihood of the data's target columns
instead (nats per row, in the data's units, as `mdn eval` prints it).
"""

import csv
import json
import math
import struct
import sys

LOG_2PI = math.log(2.0 * math.pi)


def read_safetensors(path):
    """Tensors (name -> (shape, flat list of floats)) and metadata."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8 : 8 + n])
    meta = header.pop("__metadata__", {}) or {}
    data = memoryview(blob)[8 + n :]
    tensors = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} is {t['dtype']}, not F32")
        lo, hi = t["data_offsets"]
        tensors[name] = (t["shape"], list(struct.unpack_from(f"<{(hi - lo) // 4}f", data, lo)))
    return tensors, meta


class Model:
    def __init__(self, path):
        tensors, meta = read_safetensors(path)
        if meta.get("format") != "mdn/1":
            raise ValueError(f"{path}: not an mdn model (format {meta.get('format')!r})")
        self.spec = json.loads(meta["spec"])
        self.input_names = json.loads(meta["input_names"])
        self.target_names = json.loads(meta["target_names"])
        self.input_mean = json.loads(meta["input_mean"])
        self.input_std = json.loads(meta["input_std"])
        self.target_mean = json.loads(meta["target_mean"])
        self.target_std = json.loads(meta["target_std"])
        self.layers = []
        for i in range(len(self.spec["hidden"]) + 1):
            (out_dim, in_dim), w = tensors[f"layers.{i}.weight"]
            _, b = tensors[f"layers.{i}.bias"]
            rows = [w[o * in_dim : (o + 1) * in_dim] for o in range(out_dim)]
            self.layers.append((rows, b))
        self.head = self.spec["head"]

    @property
    def is_mixture(self):
        return self.head["kind"] == "mixture"

    def outputs(self, x):
        """The last layer's outputs for one input row (data units in,
        z-scored head out)."""
        a = [(v - m) / s for v, m, s in zip(x, self.input_mean, self.input_std)]
        for i, (rows, bias) in enumerate(self.layers):
            a = [sum(w * v for w, v in zip(row, a)) + b for row, b in zip(rows, bias)]
            if i + 1 < len(self.layers):
                a = [math.tanh(v) for v in a]
        return a

    def predict_mse(self, x):
        """An MLP's prediction, in the data's units."""
        return [v * s + m for v, m, s in zip(self.outputs(x), self.target_mean, self.target_std)]

    def mixture(self, x):
        """The mixture for one input row, in the data's units."""
        o = self.outputs(x)
        k, d = self.head["k"], len(self.target_mean)
        top = max(o[:k])
        e = [math.exp(v - top) for v in o[:k]]
        pi = [v / sum(e) for v in e]
        mu_z = [o[k + c * d : k + (c + 1) * d] for c in range(k)]
        if self.head.get("covariance", "diag") == "full":
            tri = d * (d + 1) // 2
            chol = [o[k + k * d + c * tri : k + k * d + (c + 1) * tri] for c in range(k)]
            return Mixture(self, pi, mu_z, precision_factors=[upper(c, d) for c in chol])
        sig = [[math.exp(v) for v in o[k + k * d + c * d : k + k * d + (c + 1) * d]] for c in range(k)]
        return Mixture(self, pi, mu_z, sigma_z=sig)


def upper(raw, d):
    """The upper-triangular precision factor U from its row-by-row block,
    diagonal entries stored as logs."""
    u = [[0.0] * d for _ in range(d)]
    it = iter(raw)
    for i in range(d):
        for j in range(i, d):
            v = next(it)
            u[i][j] = math.exp(v) if i == j else v
    return u


def inverse(a):
    """Gauss-Jordan inverse of a small symmetric positive-definite matrix."""
    n = len(a)
    m = [row[:] + [1.0 if i == j else 0.0 for j in range(n)] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        piv = m[c][c]
        m[c] = [v / piv for v in m[c]]
        for r in range(n):
            if r != c and m[r][c] != 0.0:
                f = m[r][c]
                m[r] = [v - f * w for v, w in zip(m[r], m[c])]
    return [row[n:] for row in m]


class Mixture:
    """π, μ and σ (or the covariance) of each component, in the data's
    units; z-scored values kept for the density."""

    def __init__(self, model, pi, mu_z, sigma_z=None, precision_factors=None):
        self.pi = pi
        self.mean_, self.std = model.target_mean, model.target_std
        self.mu = [[v * s + m for v, m, s in zip(c, self.mean_, self.std)] for c in mu_z]
        self.mu_z = mu_z
        self.sigma_z = sigma_z
        self.u = precision_factors
        d = len(self.std)
        if sigma_z is not None:
            self.sigma = [[v * s for v, s in zip(c, self.std)] for c in sigma_z]
        else:
            self.cov = []
            for u in self.u:
                lam = [[sum(u[r][i] * u[r][j] for r in range(d)) for j in range(d)] for i in range(d)]
                cz = inverse(lam)
                self.cov.append([[cz[i][j] * self.std[i] * self.std[j] for j in range(d)] for i in range(d)])

    def log_pdf(self, t):
        """log p(t | x), t in the data's units."""
        tz = [(v - m) / s for v, m, s in zip(t, self.mean_, self.std)]
        d = len(tz)
        terms = []
        for c, pi in enumerate(self.pi):
            diff = [a - b for a, b in zip(tz, self.mu_z[c])]
            if self.sigma_z is not None:
                s = self.sigma_z[c]
                ll = sum(-0.5 * (v / si) ** 2 - math.log(si) for v, si in zip(diff, s)) - 0.5 * d * LOG_2PI
            else:
                u = self.u[c]
                q = sum(sum(u[i][j] * diff[j] for j in range(i, d)) ** 2 for i in range(d))
                ll = sum(math.log(u[i][i]) for i in range(d)) - 0.5 * q - 0.5 * d * LOG_2PI
            terms.append(math.log(pi) + ll if pi > 0.0 else -math.inf)
        top = max(terms)
        z = top + math.log(sum(math.exp(v - top) for v in terms))
        return z - sum(math.log(s) for s in self.std)

    def mean(self):
        d = len(self.std)
        return [sum(p * m[j] for p, m in zip(self.pi, self.mu)) for j in range(d)]

    # The rest are for one target column (D = 1), as in `mdn predict`.
    def _one(self):
        if len(self.std) != 1 or self.sigma_z is None:
            raise ValueError("median, mode and quantiles are defined for one target column")
        return [m[0] for m in self.mu], [s[0] for s in self.sigma]

    def cdf(self, t):
        mu, sigma = self._one()
        return sum(p * 0.5 * (1.0 + math.erf((t - m) / (s * math.sqrt(2.0)))) for p, m, s in zip(self.pi, mu, sigma))

    def pdf(self, t):
        mu, sigma = self._one()
        return sum(p * math.exp(-0.5 * ((t - m) / s) ** 2) / (s * math.sqrt(2.0 * math.pi)) for p, m, s in zip(self.pi, mu, sigma))

    def quantile(self, q):
        """F⁻¹(q) by bisection between the outermost components' 10-σ
        bounds."""
        mu, sigma = self._one()
        lo = min(m - 10.0 * s for m, s in zip(mu, sigma))
        hi = max(m + 10.0 * s for m, s in zip(mu, sigma))
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if self.cdf(mid) < q:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    def mode(self):
        """The global maximum of the density: a mean-shift climb from every
        component's mean, keeping the highest point reached."""
        mu, sigma = self._one()
        best, best_p = mu[0], -1.0
        for x in mu:
            for _ in range(1000):
                w = [p * math.exp(-0.5 * ((x - m) / s) ** 2) / s ** 3 for p, m, s in zip(self.pi, mu, sigma)]
                if sum(w) == 0.0:
                    break
                nx = sum(wi * m for wi, m in zip(w, mu)) / sum(w)
                if abs(nx - x) <= 1e-12 * max(1.0, abs(x)):
                    x = nx
                    break
                x = nx
            p = self.pdf(x)
            if p > best_p:
                best, best_p = x, p
        return best


def load(path):
    return Model(path)


def main(argv):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("data", help="CSV with a header row naming the model's input columns")
    ap.add_argument("--point", default="", help="mean,median,mode")
    ap.add_argument("--quantiles", default="")
    ap.add_argument("--nll", action="store_true")
    args = ap.parse_args(argv)
    model = load(args.model)
    with open(args.data, newline="") as f:
        rows = list(csv.DictReader(f))
    xs = [[float(r[n]) for n in model.input_names] for r in rows]
    if args.nll:
        ts = [[float(r[n]) for n in model.target_names] for r in rows]
        if model.is_mixture:
            nll = -sum(model.mixture(x).log_pdf(t) for x, t in zip(xs, ts)) / len(xs)
        else:
            nll = sum(sum((p - v) ** 2 for p, v in zip(model.predict_mse(x), t)) / len(t) for x, t in zip(xs, ts)) / len(xs)
        print(f"{'nll' if model.is_mixture else 'mse'} {nll:.6f}")
        return
    points = [p for p in args.point.split(",") if p]
    qs = [q for q in args.quantiles.split(",") if q]
    d = len(model.target_names)
    out = csv.writer(sys.stdout, lineterminator="\n")
    header = list(model.input_names)
    if not model.is_mixture:
        header += ["pred"] if d == 1 else [f"pred_{j}" for j in range(d)]
    else:
        k = model.head["k"]
        full = model.head.get("covariance", "diag") == "full"
        header += [f"pi_{c}" for c in range(k)]
        header += [f"mu_{c}" for c in range(k)] if d == 1 else [f"mu_{c}_{j}" for c in range(k) for j in range(d)]
        if full:
            header += [f"cov_{c}_{i}_{j}" for c in range(k) for i in range(d) for j in range(i, d)]
        else:
            header += [f"sigma_{c}" for c in range(k)] if d == 1 else [f"sigma_{c}_{j}" for c in range(k) for j in range(d)]
        for p in points:
            header += [p] if d == 1 else [f"{p}_{j}" for j in range(d)]
        header += [f"q_{q}" for q in qs]
    out.writerow(header)
    for x in xs:
        row = list(x)
        if not model.is_mixture:
            row += model.predict_mse(x)
        else:
            mix = model.mixture(x)
            row += mix.pi + [v for m in mix.mu for v in m]
            if full:
                row += [mix.cov[c][i][j] for c in range(k) for i in range(d) for j in range(i, d)]
            else:
                row += [v for s in mix.sigma for v in s]
            for p in points:
                row += mix.mean() if p == "mean" else [mix.quantile(0.5) if p == "median" else mix.mode()]
            row += [mix.quantile(float(q)) for q in qs]
        out.writerow(f"{v:.9g}" for v in row)


if __name__ == "__main__":
    main(sys.argv[1:])
