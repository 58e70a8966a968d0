#!/usr/bin/env python3
"""The classic hand-written resumable job: process a CSV row by row and
rewrite checkpoint.txt after every row with the number of rows done.

It looks right, and it resumes after Ctrl-C. Under kill -9 it is wrong in
three ways that `ckpt crashtest` finds within a few trials:

- output lines still in Python's write buffer are lost while the checkpoint
  already counts them (rows missing);
- a row written before the kill but after the last checkpoint is written
  again by the next run (rows twice);
- a kill between open('checkpoint.txt', 'w') and the write leaves the file
  empty, and the next run cannot start at all.

Usage: naive.py INPUT.csv OUTPUT.txt
"""
import csv
import os
import sys

src, dst = sys.argv[1], sys.argv[2]

start = 0
if os.path.exists("checkpoint.txt"):
    with open("checkpoint.txt") as f:
        start = int(f.read())

with open(src, newline="") as f, open(dst, "a") as out:
    rows = csv.reader(f)
    next(rows)  # the header
    for i, row in enumerate(rows):
        if i < start:
            continue
        out.write("row %d: %s\n" % (i + 1, " | ".join(row)))
        with open("checkpoint.txt", "w") as c:
            c.write(str(i + 1))
