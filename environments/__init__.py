"""The example environments, installed as ``workbench.environments``: ``shop``,
``arithmetic``, ``mental``, ``pycode``. A task names one by its folder's name."""

if __name__ == "environments":  # the checkout's old name: the same modules, not a second copy
    from workbench._aliases import alias

    alias("environments", "workbench.environments")
