"""Sort the numbers of input.json into output.json (ascending)."""

import json


# EVOLVE-BLOCK-START
def sort_numbers(numbers):
    """One pass of bubble sort: a start, not yet a full sort."""
    numbers = list(numbers)
    for i in range(len(numbers) - 1):
        if numbers[i] > numbers[i + 1]:
            numbers[i], numbers[i + 1] = numbers[i + 1], numbers[i]
    return numbers
# EVOLVE-BLOCK-END


def main():
    with open("input.json") as handle:
        numbers = json.load(handle)["numbers"]
    with open("output.json", "w") as handle:
        json.dump(sort_numbers(numbers), handle)


if __name__ == "__main__":
    main()
