#!/usr/bin/env python3
"""Minimax coefficients of the emulator's transcendentals (emulator/vmath.c).

Runs a Remez exchange in 60-digit arithmetic (mpmath) and prints each polynomial's
coefficients as C hexadecimal double literals, with its maximum error on its interval:

  exp   e^r                       on [-ln2/2, ln2/2], degree 8, relative error
  log   (2 atanh(s)/s - 2) / s^2  in z = s^2 on [0, ((sqrt2-1)/(sqrt2+1))^2], degree 4
  tanh  (tanh(x)/x - 1) / x^2     in z = x^2 on [0, 1/4], degree 6

    python3 emulator/vmath_coeffs.py
"""
import mpmath as mp

mp.mp.dps = 60


def remez(f, a, b, deg, rel=True, iters=30):
    """The degree-deg polynomial closest to f on [a, b] in the max norm (relative error
    when rel), as coefficients c[0] + c[1] x + ..., and its maximum error."""
    n = deg + 2
    xs = [(a + b) / 2 + (b - a) / 2 * mp.cos(mp.pi * (n - 1 - i) / (n - 1)) for i in range(n)]
    w = (lambda x: 1 / abs(f(x))) if rel else (lambda x: mp.mpf(1))
    c = None
    for _ in range(iters):
        # p(x_i) - f(x_i) = (-1)^i E / w(x_i) at the reference points
        A = mp.matrix(n, n)
        B = mp.matrix(n, 1)
        for i, x in enumerate(xs):
            for j in range(deg + 1):
                A[i, j] = x**j
            A[i, deg + 1] = (-1) ** i / w(x)
            B[i] = f(x)
        sol = mp.lu_solve(A, B)
        c = [sol[j] for j in range(deg + 1)]
        level = abs(sol[deg + 1])

        def err(x):
            return (mp.polyval(c[::-1], x) - f(x)) * w(x)

        # the new reference: the largest error of each run of one sign, refined
        N = 4000
        grid = [a + (b - a) * k / N for k in range(N + 1)]
        ev = [err(x) for x in grid]
        runs, cur = [], [0]
        for k in range(1, N + 1):
            if (ev[k] >= 0) == (ev[cur[0]] >= 0):
                cur.append(k)
            else:
                runs.append(max(cur, key=lambda i: abs(ev[i])))
                cur = [k]
        runs.append(max(cur, key=lambda i: abs(ev[i])))
        new = []
        for k in runs:
            if k in (0, N):
                new.append(grid[k])
                continue
            lo, hi = grid[k - 1], grid[k + 1]
            for _ in range(60):  # golden-section search for the extremum
                m1, m2 = lo + (hi - lo) * 0.382, lo + (hi - lo) * 0.618
                if abs(err(m1)) > abs(err(m2)):
                    hi = m2
                else:
                    lo = m1
            new.append((lo + hi) / 2)
        while len(new) > n:  # keep n alternating points: drop the smaller end
            if abs(err(new[0])) < abs(err(new[-1])):
                new.pop(0)
            else:
                new.pop()
        if len(new) < n:
            break
        xs = new
        if abs(max(abs(err(x)) for x in xs) - level) <= level * mp.mpf("1e-6"):
            break
    worst = max(abs(err(x)) for x in [a + (b - a) * k / 20000 for k in range(20001)])
    return c, worst


def log_r(z):
    if z == 0:
        return mp.mpf(2) / 3
    s = mp.sqrt(z)
    return (2 * mp.atanh(s) / s - 2) / z


def tanh_q(z):
    if z == 0:
        return mp.mpf(-1) / 3
    x = mp.sqrt(z)
    return (mp.tanh(x) / x - 1) / z


def main():
    half_ln2 = mp.log(2) / 2
    zmax = ((mp.sqrt(2) - 1) / (mp.sqrt(2) + 1)) ** 2
    table = [
        ("EXP", remez(mp.exp, -half_ln2, half_ln2, 8)),
        ("LOG", remez(log_r, mp.mpf(0), zmax, 4, rel=False)),
        ("TANH", remez(tanh_q, mp.mpf(0), mp.mpf("0.25"), 6, rel=False)),
    ]
    for name, (c, worst) in table:
        print(f"/* {name}: max error {mp.nstr(worst, 4)} */")
        print(f"static const double {name}_C[] = {{" + ", ".join(float(v).hex() for v in c) + "};")


if __name__ == "__main__":
    main()
