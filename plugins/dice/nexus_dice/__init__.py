"""The dice module: dice notation, coins and random picks for characters to call as tools."""
