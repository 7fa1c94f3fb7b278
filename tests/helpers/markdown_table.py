"""Reading the markdown tables that the benchmark tools write, for their tests.

Example:

>>> text = "| a | b |\\n|---|---|\\n| 1 | 2 |\\n\\nafter"
>>> markdown_table(text, "| a |")
{'1': {'a': '1', 'b': '2'}}
>>> percent("12.5%")
0.125
"""


def markdown_table(text, header_start, key=lambda cells: cells[0]):
    """`{key(cells): {column: cell}}` of the markdown table whose header starts with `header_start`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    columns = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[key(cells)] = dict(zip(columns, cells, strict=True))
    return rows


def percent(cell):
    """The leading percentage of a cell: `"12.5% (x)"` -> 0.125."""
    return float(cell.split("%")[0]) / 100
