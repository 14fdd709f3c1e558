"""Network data and power flow.

``load_case`` (``case``) reads a shipped case, a MATPOWER file, a pandapower or a PyPSA network;
``build_grid`` (``grid``) turns it into the arrays every solver reads; ``dcpf.dc_power_flow``
and ``acpf.ac_power_flow`` solve batches of grids in JAX. ``dc_outages`` holds the DC flow's
fast paths for few outages and ``network_flow`` the one interface the step calls. The command
line is ``python -m envs.powerflow``.
"""
