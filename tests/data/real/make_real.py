"""Write the real-world corpus: contact exports as each tool writes them.

Run it from anywhere (`python tests/data/real/make_real.py`); the files land beside this script
and are committed, so the tests need neither openpyxl nor odfpy at run time. Each writer keeps
its tool's header (names and order), quoting, encoding, line ends and BOM; where each format
comes from is in tests/data/SOURCES.md. The people are the same four in every file (plus a
fifth here and there), with the names an encoding can mangle: Zoë, José, Müller and
Ó Súilleabháin. tests/test_real_exports.py holds the outcome of every row.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _csv(
    rows: list[list[str]],
    *,
    delimiter: str = ",",
    eol: str = "\r\n",
    quote_all: bool = False,
) -> str:
    buffer = io.StringIO(newline="")
    quoting = csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    csv.writer(buffer, delimiter=delimiter, lineterminator=eol, quoting=quoting).writerows(rows)
    return buffer.getvalue()


def _padded(header: list[str], values: dict[str, str]) -> list[str]:
    unknown = set(values) - set(header)
    assert not unknown, unknown
    return [values.get(name, "") for name in header]


# --- Google Contacts: "Google CSV", UTF-8 without BOM ---------------------------------------------

GOOGLE_HEADER = [
    "First Name", "Middle Name", "Last Name", "Phonetic First Name", "Phonetic Middle Name",
    "Phonetic Last Name", "Name Prefix", "Name Suffix", "Nickname", "File As",
    "Organization Name", "Organization Title", "Organization Department", "Birthday", "Notes",
    "Photo", "Labels", "E-mail 1 - Label", "E-mail 1 - Value", "Phone 1 - Label",
    "Phone 1 - Value", "Phone 2 - Label", "Phone 2 - Value", "Address 1 - Label",
    "Address 1 - Formatted", "Address 1 - Street", "Address 1 - City", "Address 1 - PO Box",
    "Address 1 - Region", "Address 1 - Postal Code", "Address 1 - Country",
    "Address 1 - Extended Address",
]  # fmt: skip


def google_contacts() -> None:
    people = [
        {"First Name": "Zoë", "Last Name": "O'Brien", "Labels": "* myContacts",
         "E-mail 1 - Label": "* Home", "E-mail 1 - Value": "zoe@example.com",
         "Phone 1 - Label": "Mobile", "Phone 1 - Value": "+61 412 345 678",
         "Notes": "Met at the expo.\nPrefers mornings.",
         "Address 1 - Label": "Home", "Address 1 - Formatted": "1 George St\nSydney NSW 2000",
         "Address 1 - Street": "1 George St", "Address 1 - City": "Sydney",
         "Address 1 - Region": "NSW", "Address 1 - Postal Code": "2000",
         "Address 1 - Country": "AU"},
        {"First Name": "José", "Last Name": "García", "Labels": "* myContacts ::: Leads",
         "Phone 1 - Label": "Mobile ::: Work",
         "Phone 1 - Value": "0412 345 679 ::: 02 9876 5432"},
        {"First Name": "Hans", "Last Name": "Müller", "Labels": "* myContacts",
         "Phone 1 - Label": "Work", "Phone 1 - Value": "(02) 9876 5433",
         "Phone 2 - Label": "Mobile", "Phone 2 - Value": "0412 345 680"},
        {"First Name": "Siobhán", "Last Name": "Ó Súilleabháin", "Labels": "* myContacts",
         "E-mail 1 - Label": "Work", "E-mail 1 - Value": "siobhan@example.ie",
         "Phone 2 - Label": "Mobile", "Phone 2 - Value": "0412 345 681"},
        {"First Name": "Ann", "Last Name": "Lee", "Labels": "* myContacts",
         "Phone 1 - Label": "Work", "Phone 1 - Value": "0412 345 682 ext. 5"},
    ]  # fmt: skip
    text = _csv([GOOGLE_HEADER, *(_padded(GOOGLE_HEADER, p) for p in people)], eol="\n")
    (HERE / "google_contacts.csv").write_bytes(text.encode("utf-8"))


# --- Outlook: File > Export > Comma Separated Values, the ANSI code page (cp1252) -----------------

OUTLOOK_HEADER = [
    "Title", "First Name", "Middle Name", "Last Name", "Suffix", "Company", "Department",
    "Job Title", "Business Street", "Business Street 2", "Business Street 3", "Business City",
    "Business State", "Business Postal Code", "Business Country/Region", "Home Street",
    "Home Street 2", "Home Street 3", "Home City", "Home State", "Home Postal Code",
    "Home Country/Region", "Other Street", "Other Street 2", "Other Street 3", "Other City",
    "Other State", "Other Postal Code", "Other Country/Region", "Assistant's Phone",
    "Business Fax", "Business Phone", "Business Phone 2", "Callback", "Car Phone",
    "Company Main Phone", "Home Fax", "Home Phone", "Home Phone 2", "ISDN", "Mobile Phone",
    "Other Fax", "Other Phone", "Pager", "Primary Phone", "Radio Phone", "TTY/TDD Phone",
    "Telex", "Account", "Anniversary", "Assistant's Name", "Billing Information", "Birthday",
    "Business Address PO Box", "Categories", "Children", "Directory Server", "E-mail Address",
    "E-mail Type", "E-mail Display Name", "E-mail 2 Address", "E-mail 2 Type",
    "E-mail 2 Display Name", "E-mail 3 Address", "E-mail 3 Type", "E-mail 3 Display Name",
    "Gender", "Government ID Number", "Hobby", "Home Address PO Box", "Initials",
    "Internet Free Busy", "Keywords", "Language", "Location", "Manager's Name", "Mileage",
    "Notes", "Office Location", "Organizational ID Number", "Other Address PO Box", "Priority",
    "Private", "Profession", "Referred By", "Sensitivity", "Spouse", "User 1", "User 2",
    "User 3", "User 4", "Web Page",
]  # fmt: skip


def outlook() -> None:
    people = [
        {"First Name": "Zoë", "Last Name": "O'Brien", "Mobile Phone": "0412 345 690",
         "E-mail Address": "zoe@example.com", "E-mail Type": "SMTP",
         "Notes": "Met at the expo – keen", "Gender": "Unspecified", "Priority": "Normal",
         "Private": "False", "Sensitivity": "Normal"},
        {"First Name": "José", "Last Name": "García", "Company": "Peña & Hijos",
         "Business Phone": "(02) 9876 5400", "Mobile Phone": "+61 412 345 691",
         "Gender": "Unspecified", "Priority": "Normal", "Private": "False",
         "Sensitivity": "Normal"},
        {"First Name": "Hans", "Last Name": "Müller", "Business Phone": "02 9876 5401",
         "Gender": "Unspecified", "Priority": "Normal", "Private": "False",
         "Sensitivity": "Normal"},
        {"First Name": "Siobhán", "Last Name": "Ó Súilleabháin", "Mobile Phone": "0412 345 692",
         "Gender": "Unspecified", "Priority": "Normal", "Private": "False",
         "Sensitivity": "Normal"},
    ]  # fmt: skip
    rows = [OUTLOOK_HEADER, *(_padded(OUTLOOK_HEADER, p) for p in people)]
    (HERE / "outlook.csv").write_bytes(_csv(rows, quote_all=True).encode("cp1252"))


# --- Salesforce: Data Export (weekly export's Contact.csv), UTF-8, API names ----------------------

SALESFORCE_HEADER = [
    "Id", "IsDeleted", "MasterRecordId", "AccountId", "LastName", "FirstName", "Salutation",
    "Name", "MailingStreet", "MailingCity", "MailingState", "MailingPostalCode",
    "MailingCountry", "Phone", "Fax", "MobilePhone", "HomePhone", "OtherPhone",
    "AssistantPhone", "ReportsToId", "Email", "Title", "Department", "LeadSource", "Birthdate",
    "Description", "OwnerId", "CreatedDate", "CreatedById", "LastModifiedDate",
    "LastModifiedById", "SystemModstamp", "Call_Time__c", "Time_Zone__c",
]  # fmt: skip


def salesforce_data_export() -> None:
    def person(n: int, last: str, first: str, **more: str) -> dict[str, str]:
        stamp = "2026-05-04T03:02:01.000Z"
        return {"Id": f"0035g00000AbCd{n}AAA", "IsDeleted": "false",
                "AccountId": "0015g00000XyZ01AAA", "LastName": last, "FirstName": first,
                "Name": f"{first} {last}", "OwnerId": "0055g00000Own01AAA",
                "CreatedDate": stamp, "CreatedById": "0055g00000Own01AAA",
                "LastModifiedDate": stamp, "LastModifiedById": "0055g00000Own01AAA",
                "SystemModstamp": stamp, **more}  # fmt: skip

    people = [
        person(1, "O'Brien", "Zoë", Phone="(02) 9876 5500", MobilePhone="+61412345700",
               Call_Time__c="2030-03-04T23:30:00.000Z", Time_Zone__c="Australia/Sydney",
               Description="Asked for a call back.\nAfter 9."),
        person(2, "García", "José", MobilePhone="0412 345 701", Salutation="Mr."),
        person(3, "Müller", "Hans", Phone="02 9876 5502", MobilePhone="0412 345 702 x7"),
        person(4, "Ó Súilleabháin", "Siobhán", MobilePhone="+61 412 345 703",
               Call_Time__c="2030-03-05T01:00:00.000Z"),
    ]  # fmt: skip
    rows = [SALESFORCE_HEADER, *(_padded(SALESFORCE_HEADER, p) for p in people)]
    text = _csv(rows, eol="\n", quote_all=True)
    (HERE / "salesforce_contact.csv").write_bytes(text.encode("utf-8"))


# --- Salesforce: a report's "Export" as CSV (Details Only), ISO-8859-1, with its footer -----------


def salesforce_report() -> None:
    header = ["Contact Owner", "First Name", "Last Name", "Title", "Account Name", "Mobile",
              "Email", "Mailing City"]  # fmt: skip
    people = [
        ["Pat Smith", "Zoë", "O'Brien", "CFO", "Acme Pty Ltd", "+61 412 345 710",
         "zoe@example.com", "Sydney"],
        ["Pat Smith", "José", "García", "", "Peña & Hijos", "0412 345 711", "", "Melbourne"],
        ["Pat Smith", "Hans", "Müller", "Buyer", "Acme Pty Ltd", "0412 345 712, 0412 345 713",
         "", "Sydney"],
        ["Pat Smith", "Siobhán", "Ó Súilleabháin", "", "", "0412345714", "", "Perth"],
    ]  # fmt: skip
    footer = [
        [""],
        ["Grand Totals (4 records)"],
        [""],
        ["Confidential Information - Do Not Distribute"],
        ["Copyright (c) 2000-2026 salesforce.com, inc. All rights reserved."],
    ]
    text = _csv([header, *people], eol="\n", quote_all=True)
    text += _csv(footer, eol="\n", quote_all=True)
    (HERE / "salesforce_report.csv").write_bytes(text.encode("latin-1"))


# --- Pipedrive: People export, UTF-8 -------------------------------------------------------------


def pipedrive() -> None:
    header = ["Person - ID", "Person - Name", "Person - First name", "Person - Last name",
              "Person - Organization", "Person - Email - Work", "Person - Email - Home",
              "Person - Phone - Work", "Person - Phone - Home", "Person - Phone - Mobile",
              "Person - Phone - Other", "Person - Labels", "Person - Owner"]  # fmt: skip
    people = [
        ["101", "Zoë O'Brien", "Zoë", "O'Brien", "Acme Pty Ltd", "zoe@example.com", "", "", "",
         "+61 412 345 720", "", "Hot lead", "Pat Smith"],
        ["102", "José García", "José", "García", "Peña & Hijos", "", "", "", "",
         "0412 345 721, 0412 345 722", "", "", "Pat Smith"],
        ["103", "Hans Müller", "Hans", "Müller", "", "", "", "02 9876 5420", "", "", "", "",
         "Pat Smith"],
        ["104", "Siobhán Ó Súilleabháin", "Siobhán", "Ó Súilleabháin", "", "", "", "", "",
         "0412 345 723", "", "", "Pat Smith"],
    ]  # fmt: skip
    (HERE / "pipedrive_people.csv").write_bytes(_csv([header, *people], eol="\n").encode())


# --- Mailchimp: Audience > Export Audience, UTF-8 ------------------------------------------------


def mailchimp() -> None:
    header = ["Email Address", "First Name", "Last Name", "Address", "Phone Number", "Birthday",
              "MEMBER_RATING", "OPTIN_TIME", "OPTIN_IP", "CONFIRM_TIME", "CONFIRM_IP",
              "LATITUDE", "LONGITUDE", "GMTOFF", "DSTOFF", "TIMEZONE", "CC", "REGION",
              "LAST_CHANGED", "LEID", "EUID", "NOTES", "TAGS"]  # fmt: skip

    def member(email: str, first: str, last: str, phone: str, tags: str = "") -> list[str]:
        return [email, first, last, "1 George St  Sydney  NSW  2000  AU", phone, "", "2",
                "2025-02-03 04:05:06", "", "2025-02-03 04:06:00", "203.0.113.7", "-33.86",
                "151.21", "10", "11", "Australia/Sydney", "AU", "NSW", "2026-01-01 00:00:00",
                "123456", "a1b2c3d4e5", "", tags]  # fmt: skip

    people = [
        member("zoe@example.com", "Zoë", "O'Brien", "+61 412 345 730", '"VIP","Expo"'),
        member("jose@example.com", "José", "García", "0412345731"),
        member("hans@example.com", "Hans", "Müller", "(02) 9876 5430 ext 12"),
        member("siobhan@example.ie", "Siobhán", "Ó Súilleabháin", ""),
    ]
    (HERE / "mailchimp_members.csv").write_bytes(_csv([header, *people], eol="\n").encode())


# --- HubSpot: Contacts > Export, CSV, UTF-8, every cell quoted -----------------------------------


def hubspot() -> None:
    header = ["Record ID", "First Name", "Last Name", "Email", "Phone Number",
              "Mobile Phone Number", "Contact owner", "Lead Status", "Create Date"]  # fmt: skip
    people = [
        ["51", "Zoë", "O'Brien", "zoe@example.com", "+61 2 9876 5440", "+61 412 345 740",
         "Pat Smith", "New", "2026-01-02 03:04"],
        ["52", "José", "García", "jose@example.com", "", "0412 345 741", "Pat Smith",
         "Open", "2026-01-02 03:05"],
        ["53", "Hans", "Müller", "", "02 9876 5441", "", "", "", "2026-01-02 03:06"],
        ["54", "Siobhán", "Ó Súilleabháin", "", "", "+61412345742", "", "",
         "2026-01-02 03:07"],
    ]  # fmt: skip
    text = _csv([header, *people], quote_all=True)
    (HERE / "hubspot_contacts.csv").write_bytes(text.encode())


# --- Excel: "Unicode Text (*.txt)": UTF-16 LE with a BOM, tabs, CRLF ------------------------------


def excel_unicode_text() -> None:
    rows = [
        ["First Name", "Last Name", "Mobile", "Call Time", "Time Zone"],
        ["Zoë", "O'Brien", "0412 345 750", "2030-03-02 09:30", "Australia/Sydney"],
        ["José", "García", "+61 412 345 751", "", ""],
        ["Hans", "Müller", "412345752", "", ""],
        ["Siobhán", "Ó Súilleabháin", "0412 345 753", "2030-03-02 10:00", "Australia/Perth"],
    ]
    # The utf-16 codec writes the BOM, little endian on every machine this runs on; spelled
    # out so the file is the same everywhere.
    data = b"\xff\xfe" + _csv(rows, delimiter="\t").encode("utf-16-le")
    (HERE / "excel_unicode_text.txt").write_bytes(data)


# --- Excel for Mac: "CSV (Macintosh)": Mac Roman, CR line ends ------------------------------------


def excel_mac() -> None:
    rows = [
        ["First Name", "Last Name", "Mobile"],
        ["Zoë", "O'Brien", "0412 345 760"],
        ["José", "García", "0412 345 761"],
        ["Hans", "Müller", "0412 345 762"],
        ["Siobhán", "Ó Súilleabháin", "0412 345 763"],
    ]
    (HERE / "excel_mac.csv").write_bytes(_csv(rows, eol="\r").encode("mac_roman"))


# --- LibreOffice Calc: .ods; Google Sheets: File > Download > .xlsx -------------------------------


def libreoffice_ods() -> None:
    import pandas as pd

    rows: list[list[object]] = [
        ["0412 345 770", "Zoë", "O'Brien", datetime(2030, 3, 3, 9, 0)],
        [412345771, "José", "García", ""],  # a number cell: Calc dropped the leading zero
        ["0412 345 772 / 0412 345 773", "Hans", "Müller", ""],
        ["0412 345 774", "Siobhán", "Ó Súilleabháin", datetime(2030, 3, 3, 9, 30)],
    ]
    frame = pd.DataFrame(rows, columns=["Phone", "First Name", "Last Name", "Scheduled Time"])
    frame.to_excel(HERE / "libreoffice.ods", index=False, engine="odf", sheet_name="Sheet1")


def google_sheets_xlsx() -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    sheet.append(["Name", "First name", "Last name", "Mobile phone", "Notes"])
    sheet.append(["Zoë O'Brien", "Zoë", "O'Brien", "+61 412 345 780", ""])
    sheet.append(["José García", "José", "García", "0412 345 781", "call after 5"])
    sheet.append(["Hans Müller", "Hans", "Müller", 412345782, ""])  # typed as a number
    sheet.append(["Siobhán Ó Súilleabháin", "Siobhán", "Ó Súilleabháin", "0412 345 783 x9", ""])
    book.properties.creator = None
    book.save(HERE / "google_sheets.xlsx")


WRITERS = (
    google_contacts,
    outlook,
    salesforce_data_export,
    salesforce_report,
    pipedrive,
    mailchimp,
    hubspot,
    excel_unicode_text,
    excel_mac,
    libreoffice_ods,
    google_sheets_xlsx,
)


if __name__ == "__main__":
    for write in WRITERS:
        write()
        print(f"wrote {write.__name__}")
