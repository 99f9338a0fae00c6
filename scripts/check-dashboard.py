#!/usr/bin/env python3
"""Checks template.yaml's operations dashboard and alarms, which cfn-lint cannot.

    python3 scripts/check-dashboard.py [TEMPLATE]    (default: template.yaml)
    python3 scripts/check-dashboard.py --self-test   (must catch planted faults)

The dashboard body is JSON joined from `!Sub` fragments, so cfn-lint sees
only strings. This renders it (every `${Name}` becomes a marker, a number
parameter its default) and checks that:
  - it is valid JSON, every widget with a type and properties, every metric
    widget with a region and a list of metric rows;
  - every function (AWS::Serverless::Function) has its line in the
    "Function errors" and "Function throttles" graphs, in one of the two
    duration graphs, and its log group in the log widget; and a metric in
    FunctionErrorsAlarm and FunctionThrottlesAlarm;
  - every SQS queue is in the "Failure queues" graph and every alarm in the
    alarm widget;
  - every alarm has a section in the runbook, docs/operations.md, headed by
    its logical id, and its AlarmDescription links there.
So a new function, queue or alarm cannot be merged without its lines (the
">>>" comments in template.yaml say where). Needs PyYAML (the cfn-lint venv
has it). Exits 1 on any finding.
"""

import json
import os
import re
import sys

import yaml

TAGS = ["Ref", "Condition", "Sub", "Join", "GetAtt", "If", "Equals", "Not", "And", "Or",
        "Split", "Select", "FindInMap", "Base64", "GetAZs", "ImportValue", "Cidr", "ToJsonString"]


class Loader(yaml.SafeLoader):
    pass


def _tag(name):
    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}
    return construct


for _t in TAGS:
    Loader.add_constructor("!" + _t, _tag(_t if _t in ("Ref", "Condition") else "Fn::" + _t))


def marker(name):
    return "@{" + name + "}"


def render(value, template):
    """A `!Join` of `!Sub` fragments as the text CloudFormation would make, with markers."""
    params = template.get("Parameters", {})

    def sub(text):
        def one(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            p = params.get(name)
            if p and p.get("Type") == "Number":
                return str(p.get("Default", 1))
            return marker(name)
        return re.sub(r"\$\{([^}]*)\}", one, text)

    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Fn::Sub":
            return sub(arg if isinstance(arg, str) else arg[0])
        if fn == "Fn::Join":
            return arg[0].join(render(part, template) for part in arg[1])
    raise ValueError(f"cannot render {value!r}")


def runbook_anchors(path):
    """The heading anchors of the runbook (GitHub's: lower case, punctuation dropped)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except OSError:
        return set()
    return {re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            for m in (re.match(r"^#{1,6}\s+(.*)$", line) for line in lines) if m}


def check(text, runbook="docs/operations.md"):
    """Findings for one template's text."""
    t = yaml.load(text, Loader=Loader)
    res = t.get("Resources", {})
    of_type = lambda ty: sorted(k for k, v in res.items() if v.get("Type") == ty)
    functions = of_type("AWS::Serverless::Function")
    queues = of_type("AWS::SQS::Queue")
    alarms = of_type("AWS::CloudWatch::Alarm")
    dashboards = of_type("AWS::CloudWatch::Dashboard")
    log_group_of = {}
    for k in of_type("AWS::Logs::LogGroup"):
        name = res[k].get("Properties", {}).get("LogGroupName")
        if isinstance(name, dict) and "Fn::Sub" in name:
            m = re.fullmatch(r"/aws/lambda/\$\{(\w+)\}", name["Fn::Sub"])
            if m:
                log_group_of[m.group(1)] = k
    problems = []
    if len(dashboards) != 1:
        return [f"expected one AWS::CloudWatch::Dashboard, found {len(dashboards)}"]
    dash = dashboards[0]
    try:
        body = render(res[dash]["Properties"]["DashboardBody"], t)
        widgets = json.loads(body)["widgets"]
    except (ValueError, KeyError, TypeError) as e:
        return [f"{dash}: the DashboardBody is not valid dashboard JSON ({e}); a fragment lost its comma or bracket?"]
    by_title = {}
    for i, w in enumerate(widgets):
        props = w.get("properties")
        if "type" not in w or not isinstance(props, dict):
            problems.append(f"{dash}: widget {i} has no type or properties")
            continue
        by_title[props.get("title", w["type"])] = json.dumps(w)
        if w["type"] == "metric":
            rows = props.get("metrics")
            if "region" not in props or not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                problems.append(f"{dash}: metric widget {props.get('title')!r} needs a region and a list of metric rows")

    def need(title, name, line):
        w = by_title.get(title)
        if w is None:
            problems.append(f"{dash}: no widget titled {title!r}")
        elif marker(name) not in w:
            problems.append(f"{dash}: {name} is missing from {title!r}: add the line  - !Sub {line}  where the '>>>' comment says")

    for f in functions:
        label = re.sub(r"(?<!^)(?=[A-Z])", "-", f.removesuffix("Function")).lower()
        for metric, title in (("Errors", "Function errors"), ("Throttles", "Function throttles")):
            need(title, f, f"',[\"AWS/Lambda\",\"{metric}\",\"FunctionName\",\"${{{f}}}\",{{\"label\":\"{label}\"}}]'")
        durations = [w for title, w in by_title.items() if "duration" in title.lower()]
        if not any(marker(f) in w for w in durations):
            problems.append(f"{dash}: {f} is in no duration graph: add its Duration line to one ('>>>' comments)")
        lg = log_group_of.get(f)
        if lg is None:
            problems.append(f"{f}: no AWS::Logs::LogGroup named /aws/lambda/${{{f}}} (retention, and the dashboard's log widget)")
        else:
            need("Recent errors and warnings, all functions", lg, f"' | SOURCE ''${{{lg}}}'''")
        for alarm in ("FunctionErrorsAlarm", "FunctionThrottlesAlarm"):
            metrics = res.get(alarm, {}).get("Properties", {}).get("Metrics", [])
            refs = [d.get("Value") for m in metrics for d in
                    m.get("MetricStat", {}).get("Metric", {}).get("Dimensions", [])]
            if {"Ref": f} not in refs:
                problems.append(f"{alarm}: no metric for {f}: add its line where the '>>>' comment says")
    for q in queues:
        need("Failure queues: messages waiting", f"{q}.QueueName",
             f"',[\"AWS/SQS\",\"ApproximateNumberOfMessagesVisible\",\"QueueName\",\"${{{q}.QueueName}}\",{{\"label\":\"{q}\"}}]'")
    for a in alarms:
        need("Alarms", f"{a}.Arn", f"',\"${{{a}.Arn}}\"'")
    anchors = runbook_anchors(runbook)
    for a in alarms:
        anchor = a.lower()
        if anchor not in anchors:
            problems.append(f"{a}: no section '### {a}' in {runbook} (what it means, how to look, what to do)")
        description = res[a].get("Properties", {}).get("AlarmDescription", "")
        if f"docs/operations.md#{anchor}" not in str(description):
            problems.append(f"{a}: its AlarmDescription should end with 'Runbook: docs/operations.md#{anchor}'")
    return problems


def self_test(text, runbook):
    """The checks catch a lost line, a broken fragment and a missing alarm metric."""
    cases = {
        "a function's errors line":
            (re.sub(r"\n\s*- !Sub ',\[\"AWS/Lambda\",\"Errors\",\"FunctionName\",\"\$\{NotifyFunction\}\".*", "", text, count=1),
             "NotifyFunction is missing from 'Function errors'"),
        "a closing fragment":
            (text.replace("\n          - ']}}'\n", "\n", 1), "not valid dashboard JSON"),
        "an alarm's metric":
            (re.sub(r"\n\s*- \{Id: sweep, ReturnData: false, MetricStat: \{Metric: \{Namespace: AWS/Lambda, MetricName: Throttles.*", "", text, count=1),
             "FunctionThrottlesAlarm: no metric for SweepFunction"),
        "an alarm's runbook link":
            (text.replace("Runbook: docs/operations.md#sweepfailedalarm", "", 1),
             "SweepFailedAlarm: its AlarmDescription should end with"),
        "a queue's line":
            (re.sub(r"\n\s*- !Sub ',\[\"AWS/SQS\".*NotifyFailureQueue.*", "", text, count=1),
             "NotifyFailureQueue.QueueName is missing"),
    }
    failed = False
    if check(text, runbook):
        print("check-dashboard: self-test FAILED: the template itself has findings", file=sys.stderr)
        failed = True
    for what, (mutated, expected) in cases.items():
        if mutated == text:
            print(f"check-dashboard: self-test FAILED: could not remove {what}", file=sys.stderr)
            failed = True
        elif not any(expected in p for p in check(mutated, runbook)):
            print(f"check-dashboard: self-test FAILED: removing {what} went unnoticed", file=sys.stderr)
            failed = True
    if not failed:
        print(f"check-dashboard: self-test passed ({len(cases)} planted faults caught)")
    return 1 if failed else 0


def main(argv):
    self_testing = argv[:1] == ["--self-test"]
    if self_testing:
        argv = argv[1:]
    path = argv[0] if argv else "template.yaml"
    runbook = os.path.join(os.path.dirname(path), "docs", "operations.md")
    if self_testing:
        return self_test(open(path).read(), runbook)
    problems = check(open(path).read(), runbook)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print(f"check-dashboard: {path}: the dashboard is valid JSON and covers every function, queue and alarm; every alarm has its runbook section")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
