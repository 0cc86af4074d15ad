"""Synthesis with open tools: GHDL's netlist, yosys's resource counts, nextpnr's place-and-route and timing."""
