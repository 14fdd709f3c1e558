"""One step of the grid, as pure JAX functions of ``(key, state, action, params)``.

``transition.transition`` is the step: ``exogenous`` draws weather, demand and outages,
``dispatch`` turns actions into unit, battery and shedding set-points, ``envs.powerflow``
solves the network, ``protection`` trips overloaded branches, ``reward`` scores the step and
``observation`` builds what the agents see. ``params.build_params`` builds the static
``EnvParams`` once (NumPy) from the config, with ``devices``, ``layouts``, ``scenarios``,
``profiles`` and ``chronics``.
"""
