"""The calling rules of US states that are stricter than the federal 08:00-21:00, as data.

Each rule names the statute it comes from, where its text was read, and the date it was last
checked. `RULES_VERSION` is the date of the table as a whole: a change to any rule changes it,
and `batchcall windows show` prints it. A state is in the table only when its rule could be
read in the statute or the enacted bill; a state left out is held to the federal hours alone
(README.md, "Calling windows", lists the states not modelled).

Hours are a weekly spec in the form `--calling-window` takes ("daily 08:00-20:00"), read in the
callee's own time zone. `holidays` names `holidays`-package calendars on which no call may be
made at all. `cap` is (calls, hours): at most that many calls to one number in any rolling
period, enforced through the contact ledger; the statutes count calls "on the same subject
matter", which batchcall takes as every call to the number, whatever the script, so the cap
can only be stricter than the law, never looser.
"""

from __future__ import annotations

from dataclasses import dataclass

RULES_VERSION = "2026-12-02"


@dataclass(frozen=True, slots=True)
class StateRule:
    """One state's calling rule and its source."""

    state: str  # USPS code, e.g. "FL"
    hours: str  # a window spec, read in the callee's zone
    citation: str  # the statute, as it is cited
    source: str  # where its text was read
    checked: str  # ISO date the source was last read
    holidays: tuple[str, ...] = ()  # calendars on which every call is banned
    cap: tuple[int, int] | None = None  # (calls, hours)

    def hours_label(self) -> str:
        return f"{self.state}: {self.hours} ({self.citation})"

    def cap_label(self) -> str | None:
        if self.cap is None:
            return None
        calls, hours = self.cap
        return f"{self.state}: at most {calls} calls in any {hours} h ({self.citation})"


US_STATE_RULES: dict[str, StateRule] = {
    rule.state: rule
    for rule in (
        # (6)(a): not "before 8 a.m. or after 8 p.m. local time at the called person's
        # location"; (6)(b): not "more than three ... calls from any number to a person over a
        # 24-hour period on the same subject matter or issue". As amended by 2021 SB 1120.
        StateRule(
            "FL",
            "daily 08:00-20:00",
            "Fla. Stat. 501.616(6)",
            "https://flsenate.gov/Session/Bill/2021/1120/BillText/er/HTML",
            "2026-12-02",
            cap=(3, 24),
        ),
        # Telephone Solicitation Act of 2022 (HB 3168, in force 1 November 2022): the same
        # 8 a.m. to 8 p.m. and three calls per 24 hours as Florida's, codified at 775C.4.
        StateRule(
            "OK",
            "daily 08:00-20:00",
            "Okla. Stat. tit. 15, 775C.4",
            "https://app.legiplex.com/ok/legislature/2022/2022-r/bills/hb3168/drafts-latest",
            "2026-12-02",
            cap=(3, 24),
        ),
        # Stop the Spam Calls Act of 2023 (SB 90, in force 1 January 2024): 8 a.m. to 8 p.m.
        # in the called party's time zone, and three calls per 24 hours on the same subject.
        StateRule(
            "MD",
            "daily 08:00-20:00",
            "Md. Code, Com. Law 14-4503",
            "https://www.dnc.com/index.php/news/"
            "maryland-governor-signs-stop-spam-calls-act-2023-law",
            "2026-12-02",
            cap=(3, 24),
        ),
    )
}
