"""Labs beyond the gradient-descent demo: workbooks a learner opens to study one topic.

`outputs` (`sheetsync demo --lab outputs`): how a classifier's outputs look — the fast.ai
entropy sheets reproduced as live formulas (`entropy`), and two trained classifiers on the
data of `datasets`.
"""
