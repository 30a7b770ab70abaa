"""Compare finished runs by what changed: one line per run in a figure, labelled by the settings that differ.

    python compare.py
    python compare.py runs/resnet runs/resnet-2 -o lr.png

With no folders it compares every run under runs/ and writes runs/comparison.png; it also prints a table.
"""
from helpers.comparison import main

if __name__ == "__main__":
    main()
