# JupyterHub configuration of the marketlab hub. `marketlab hub start` (make hub) runs JupyterHub with
# this file; every setting comes from the hub's folder (hub.json) through marketlab.hub.hubconfig.
# An operator's own settings go in <hub folder>/jupyterhub_config.py, read last, e.g.
#     c.MarketlabSpawner.sandbox_learners = False
#     c.Spawner.start_timeout = 300
import os
from pathlib import Path

from marketlab.hub import hubconfig, settings

c = get_config()  # noqa: F821 (provided by JupyterHub when it reads this file)
hubconfig.configure(c, settings.load(os.environ["MARKETLAB_HUB_ROOT"]))
local = Path(os.environ["MARKETLAB_HUB_ROOT"]) / "jupyterhub_config.py"
if local.is_file():
    load_subconfig(str(local))  # noqa: F821 (provided by traitlets to config files)
