"""The adaptive rate limiter: one `Gate` per API key, shared by every worker.

The API says little: `X-RateLimit-Limit` and `X-RateLimit-Remaining` (on every response, on 429s
only, or never) and `Retry-After` on 429. No reset header, no window length, no algorithm name,
and another client may be spending the same key. The gate learns the rest while it runs.

It is composed the way botocore composes its adaptive mode (`CubicCalculator`, `RateClocker`,
`TokenBucket`): the parts measure, the composition decides.

- **The gate** (`_gate.Gate`) admits requests: a shared pause on 429 (`Retry-After`, seconds or
  an HTTP-date, capped, with at most 50 ms of jitter, once per storm of 429s, that every
  worker waits for; the throttled row is re-queued, since a 429 was never executed), a
  pacer, a concurrency cap that follows rate × observed latency plus a small reserve (unless
  the user fixed it with `--concurrency`; while blind, at most 2% of the requests accepted so
  far), and the `--max-rate` ceiling. It starts cautiously: one request goes alone
  and says how much quota there is.
- **A pacer whose rate changes at run time.** aiolimiter cannot change its drain rate once built
  (aiolimiter issue #98), and a fresh `AsyncLimiter` bursts its whole capacity, so the adaptive
  part is a next-send timestamp: each request leaves `1 / rate` after the previous one, and the
  rate is recomputed at every decision by the rate model in use (`_model.RateModel`).
  aiolimiter is kept for what it is right for: the fixed `--max-rate` ceiling, built burst-free.
- **Local quota accounting** (`_quota.Quota`): the newest `Remaining`, less every permit issued
  after it; older answers are stale and ignored, so out-of-order replies never inflate it.
- **The learner** (`_learner.Learner`) reads each answer into the quota and switches the rate
  model as the evidence changes. The net quota handed back between two observations is
  `ΔRemaining + Δrequests`: in a fixed window it is never positive except at a reset, where it
  jumps by a large share of the limit; in a token bucket or sliding window it grows steadily.
- **Quota that a count shows is spent at once** (`Accounted`, `CountedWindow`): pacing it out
  over the window gains nothing, and makes the last window of a run take a whole window. (A
  fixed window mid-run is spread over its first 30%, which costs nothing either and lets a
  job started later on the key be counted among ours; `_others` then splits each window.)
- **The rate models:**
  - `_blind.Blind`, with no count (no headers until a 429): a slow start that doubles, and
    after a throttle a CUBIC curve around the rate that was throttled, like botocore's adaptive
    mode. The first throttle also bounds the rate: everything accepted beyond one limit's worth
    came back as refill.
  - `_counted.CountedWindow`, a fixed window with counts on every answer: its resets are
    timed by `_resets.ResetBounds`, bounds from which of our requests fell on each side of
    each reset (and a 429's whole-second Retry-After), with a round window length tried
    first; a window's first request goes once the latest the reset may come has passed. Resets
    that follow our own bursts rather than a clock are a sliding window's, and are timed so.
  - `_fixed.FixedWindow`, a window read from a blind 429: a throttle can reveal a fixed
    window (`_fixed.WindowReader`): the refused request found our last `limit` accepted ones
    in the window, so it began just before the first of them, and a Retry-After of two
    seconds or more must agree with windows back to back from our first request. Then the gate
    paces that window as if it saw its resets (the rate spreads what is left until the
    predicted reset, prawcore's remaining / seconds-to-reset), and returns to the blind mode
    for good at the next 429.
  - `_rolling.Rolling`, a bucket or a sliding window: what the count shows at once, then the
    observed refill. A sliding window echoes our own requests
    (`_echo.Echo`): its quota comes back exactly one window after each request the server
    counted, so each observation bounds the window. While the bounds agree, the gate foresees
    every refill from its own send times rather than extrapolating a refill rate that arrives
    in bursts (which sent requests too soon, each costing a whole-second 429 pause). A token
    bucket refills whenever, so its bounds soon disagree; it is then paced by its count
    (the spare quota over half a second), which every job on the key sees alike, so two jobs
    sharing it settle at half the refill each rather than at whatever split they fell into.
"""

from ._gate import Gate, GateClosed, Permit
from ._reply import NO_REPLY, NoReply, Reply, parse_retry_after, rate_headers

__all__ = [
    "NO_REPLY",
    "Gate",
    "GateClosed",
    "NoReply",
    "Permit",
    "Reply",
    "parse_retry_after",
    "rate_headers",
]
