#!/usr/bin/env python3
"""Golden CSV fixtures from Python's csv module (RFC 4180 dialect) for tests/test_csv.c.

Writes tests/fixtures/data/csv_cases/:
  tricky.csv           a hand-written CSV with quoted commas, doubled quotes, embedded
                       LF and CRLF, CRLF record ends, blank lines, empty fields, UTF-8
  tricky.expected.json what csv.DictReader reads from it: {"header": [...], "rows": [[...]]}
  written.csv          csv.writer(lineterminator="\\n") output for the rows in
                       tricky.expected.json except those with a lone CR (Python leaves
                       a lone CR unquoted when the terminator is LF; we quote it, so a
                       reader never mistakes it for a line end); our writer must
                       produce the same bytes
Each JSON records the Python version that produced it."""
import csv
import io
import json
import os
import platform

out = os.path.join(os.path.dirname(__file__), "../../tests/fixtures/data/csv_cases")
os.makedirs(out, exist_ok=True)

tricky = (
    'modality,input,label,file_name\r\n'
    'text,"A cat, on a mat",animals,000000000139.jpg\r\n'
    'text,"She said ""hi"" twice",people,\r\n'
    '\r\n'
    'text,"two\nlines",food,a.jpg\n'
    'text,"crlf\r\ninside",food,b.jpg\n'
    'image,images/x y.jpg,vehicles,x y.jpg\n'
    'text,,empty,\n'
    'text, leading and trailing ,spaces,c.jpg\n'
    'text,"caf\u00e9 \u2014 \U0001F600",utf8,d.jpg\n'
    'text,"",quoted empty,e.jpg\n'
    'text,"a\rb",bare cr in quotes,f.jpg\n'
    'text,last,no newline,g.jpg'
)
with open(os.path.join(out, "tricky.csv"), "w", encoding="utf-8", newline="") as f:
    f.write(tricky)
with open(os.path.join(out, "tricky.csv"), encoding="utf-8", newline="") as f:
    r = csv.reader(f)
    header = next(r)
    rows = [row for row in r if row]  # DictReader semantics: blank lines skipped
meta = {"python": platform.python_version(), "module": "csv (stdlib)"}
json.dump({"header": header, "rows": rows, "generator": meta},
          open(os.path.join(out, "tricky.expected.json"), "w"), ensure_ascii=False, indent=1)
buf = io.StringIO(newline="")
w = csv.writer(buf, lineterminator="\n")
w.writerow(header)
w.writerows(row for row in rows if not any("\r" in c.replace("\r\n", "") for c in row))
with open(os.path.join(out, "written.csv"), "w", encoding="utf-8", newline="") as f:
    f.write(buf.getvalue())
print("wrote", out, len(rows), "rows")
