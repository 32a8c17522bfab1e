"""The self-paced JupyterHub: settings, system accounts, the spawner, the model gateway and live progress.

    marketlab hub start --instructor ana        # as root: the hub for a cohort on this machine

Layout of the hub's folder (`HubSettings.root`, /srv/marketlab-hub by default):

    hub.json            the settings `marketlab hub start` was given (no secrets)
    state/              JupyterHub's database and cookie secret (root only)
    student/            the student versions of the labs, copied into a learner's home on first start
    config/learner/     Jupyter settings of a learner's server (no instructor tools; nbgrader exchange)
    config/instructor/  Jupyter settings of an instructor's server
    exchange/           nbgrader's exchange (the course's inbound is write-only for learners)
    course/             the course folder (instructors' group only)
    gateway/            the model gateway's ledger, upstream key and local model (gateway user only)
    homes/<name>/       one home per person, readable by that person only
"""
