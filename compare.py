"""Compare runs by what differs between them: one line per run in a figure, labelled by what differs.

    python compare.py
    python compare.py runs/resnet runs/resnet-2 -o lr.png
    python compare.py --diff runs/resnet runs/resnet-2

With no folders it compares every run under runs/ and writes runs/comparison.png; it also prints a table. --diff
prints the lines of code (the script, models.py, data.py) that differ between two runs.
"""

from helpers.comparison import main

if __name__ == "__main__":
    main()
