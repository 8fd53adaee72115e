"""run.log masks phone numbers but keeps timestamps, hashes and ids readable."""

from batchcall._logs import mask_phones


def test_phone_numbers_in_log_lines_are_masked():
    """E.164, national and bracketed numbers keep only a few digits at each end."""
    for raw, digits in [
        ("+61429069971", "61429069971"),
        ("0429 069 971", "0429069971"),
        ("(02) 9123 4567", "0291234567"),
    ]:
        masked = mask_phones(f"row 3 phone {raw} rejected")
        assert digits not in masked.replace(" ", "")
        assert "*" in masked


def test_timestamps_hashes_and_ids_are_left_alone():
    """Only phones are personal data; dates, sha256s and run ids stay as they are."""
    line = (
        "2026-11-26 17:23:10,406 run contacts-20261126T172310Z sha256 "
        "5b5a4c0e5f9725aed7d9f8d22987bc1d18a6037ce6ec7ea12730d969be4948 http=400"
    )
    assert mask_phones(line) == line
