"""Why a score is what it is: exact contributions (TreeSHAP), points of health per feature and
component, and drivers in plain words."""
