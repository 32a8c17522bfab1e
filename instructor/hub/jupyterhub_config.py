# JupyterHub configuration of the marketlab hub. `marketlab hub start` (make hub) runs JupyterHub with
# this file; every setting comes from the hub's folder (hub.json) through marketlab.hub.hubconfig.
import os

from marketlab.hub import hubconfig, settings

c = get_config()  # noqa: F821 (provided by JupyterHub when it reads this file)
hubconfig.configure(c, settings.load(os.environ["MARKETLAB_HUB_ROOT"]))
