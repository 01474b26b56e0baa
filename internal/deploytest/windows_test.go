package deploytest

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const windowsDir = "../../deploy/windows"

const taskNS = "http://schemas.microsoft.com/windows/2004/02/mit/task"

// taskSchema is the part of the Task Scheduler schema (task.xsd, version
// 1.4) the definition uses: the children each element may have. Elements
// listed under required must be present.
var taskSchema = map[string][]string{
	"Task":             {"RegistrationInfo", "Triggers", "Principals", "Settings", "Actions", "Data"},
	"RegistrationInfo": {"URI", "SecurityDescriptor", "Source", "Date", "Author", "Version", "Description", "Documentation"},
	"Triggers":         {"BootTrigger", "RegistrationTrigger", "IdleTrigger", "TimeTrigger", "EventTrigger", "LogonTrigger", "SessionStateChangeTrigger", "CalendarTrigger"},
	"CalendarTrigger":  {"Repetition", "StartBoundary", "EndBoundary", "ExecutionTimeLimit", "Enabled", "RandomDelay", "ScheduleByDay", "ScheduleByWeek", "ScheduleByMonth", "ScheduleByMonthDayOfWeek"},
	"ScheduleByDay":    {"DaysInterval"},
	"Principals":       {"Principal"},
	"Principal":        {"UserId", "LogonType", "GroupId", "DisplayName", "RunLevel", "ProcessTokenSidType", "RequiredPrivileges"},
	"Settings": {"AllowStartOnDemand", "RestartOnFailure", "MultipleInstancesPolicy", "DisallowStartIfOnBatteries", "StopIfGoingOnBatteries",
		"AllowHardTerminate", "StartWhenAvailable", "NetworkProfileName", "RunOnlyIfNetworkAvailable", "WakeToRun", "Enabled", "Hidden",
		"DeleteExpiredTaskAfter", "IdleSettings", "NetworkSettings", "ExecutionTimeLimit", "Priority", "RunOnlyIfIdle",
		"UseUnifiedSchedulingEngine", "DisallowStartOnRemoteAppSession", "MaintenanceSettings", "Volatile"},
	"IdleSettings":     {"Duration", "WaitTimeout", "StopOnIdleEnd", "RestartOnIdle"},
	"Repetition":       {"Interval", "Duration", "StopAtDurationEnd"},
	"RestartOnFailure": {"Interval", "Count"},
	"Actions":          {"Exec", "ComHandler", "SendEmail", "ShowMessage"},
	"Exec":             {"Command", "Arguments", "WorkingDirectory"},
}

var required = map[string][]string{
	"Task":            {"Triggers", "Settings", "Actions", "Principals"},
	"CalendarTrigger": {"StartBoundary"},
	"Principal":       {"UserId", "LogonType"},
	"Exec":            {"Command"},
}

var (
	isoDuration = regexp.MustCompile(`^P(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?$`)
	boolean     = regexp.MustCompile(`^(true|false)$`)
)

// valueRules check the text of leaf elements by name.
var valueRules = map[string]*regexp.Regexp{
	"RandomDelay": isoDuration, "ExecutionTimeLimit": isoDuration, "Interval": isoDuration,
	"Enabled": boolean, "Hidden": boolean, "AllowHardTerminate": boolean, "StartWhenAvailable": boolean,
	"RunOnlyIfNetworkAvailable": boolean, "StopOnIdleEnd": boolean, "RestartOnIdle": boolean, "AllowStartOnDemand": boolean,
	"RunOnlyIfIdle": boolean, "WakeToRun": boolean, "DisallowStartIfOnBatteries": boolean, "StopIfGoingOnBatteries": boolean,
	"StartBoundary":           regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$`),
	"DaysInterval":            regexp.MustCompile(`^[1-9]\d{0,2}$`),
	"Count":                   regexp.MustCompile(`^[1-9]\d*$`),
	"Priority":                regexp.MustCompile(`^(10|[0-9])$`),
	"LogonType":               regexp.MustCompile(`^(S4U|Password|InteractiveToken|InteractiveTokenOrPassword|ServiceAccount|Group)$`),
	"RunLevel":                regexp.MustCompile(`^(LeastPrivilege|HighestAvailable)$`),
	"MultipleInstancesPolicy": regexp.MustCompile(`^(Parallel|Queue|IgnoreNew|StopExisting)$`),
}

type node struct {
	name     string
	text     string
	children []*node
}

func (n *node) child(name string) *node {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (n *node) path(names ...string) string {
	for _, name := range names {
		if n = n.child(name); n == nil {
			return ""
		}
	}
	return strings.TrimSpace(n.text)
}

// parseTask reads the XML into a tree, failing on another namespace.
func parseTask(t *testing.T, r io.Reader) *node {
	t.Helper()
	dec := xml.NewDecoder(r)
	var stack []*node
	var root *node
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if el.Name.Space != taskNS {
				t.Fatalf("element %s is in namespace %q, want %s", el.Name.Local, el.Name.Space, taskNS)
			}
			n := &node{name: el.Name.Local}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(el)
			}
		}
	}
	if root == nil {
		t.Fatal("no root element")
	}
	return root
}

// checkShape reports every element the schema does not allow where it is,
// every missing required child and every leaf value of the wrong form.
func checkShape(n *node) []string {
	var problems []string
	allowed, known := taskSchema[n.name]
	seen := map[string]bool{}
	for _, c := range n.children {
		if known && !slices.Contains(allowed, c.name) {
			problems = append(problems, n.name+" may not contain "+c.name)
		}
		if seen[c.name] && n.name != "Triggers" && n.name != "Actions" {
			problems = append(problems, n.name+" has "+c.name+" twice")
		}
		seen[c.name] = true
		problems = append(problems, checkShape(c)...)
	}
	for _, r := range required[n.name] {
		if !seen[r] {
			problems = append(problems, n.name+" lacks "+r)
		}
	}
	if re, ok := valueRules[n.name]; ok && len(n.children) == 0 && !re.MatchString(strings.TrimSpace(n.text)) {
		problems = append(problems, n.name+" has the invalid value "+strings.TrimSpace(n.text))
	}
	return problems
}

func TestTaskSchedulerDefinitionHasTheSchemasShape(t *testing.T) {
	for file, command := range map[string]string{"keyescrow-backup.xml": "backup", "keyescrow-verify.xml": "verify"} {
		t.Run(file, func(t *testing.T) {
			f, err := os.Open(filepath.Join(windowsDir, file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			task := parseTask(t, f)
			if task.name != "Task" {
				t.Fatalf("root %s, want Task", task.name)
			}
			for _, p := range checkShape(task) {
				t.Error(p)
			}
			exec := task.child("Actions").child("Exec")
			if cmd := exec.path("Command"); !strings.HasSuffix(strings.ToLower(cmd), `\keyescrow.exe`) {
				t.Errorf("Command %q does not run keyescrow.exe", cmd)
			}
			if args := exec.path("Arguments"); !strings.HasSuffix(args, " "+command) || !strings.Contains(args, "--config ") {
				t.Errorf("Arguments %q, want --config … %s", args, command)
			}
			p := task.child("Principals").child("Principal")
			if p.path("UserId") != "S-1-5-18" || p.path("LogonType") != "ServiceAccount" || p.path("RunLevel") != "LeastPrivilege" {
				t.Errorf("principal %s/%s/%s, want SYSTEM as a service account with least privilege", p.path("UserId"), p.path("LogonType"), p.path("RunLevel"))
			}
			if s := task.child("Settings"); s.path("MultipleInstancesPolicy") != "IgnoreNew" || s.path("StartWhenAvailable") != "true" {
				t.Error("settings must not start a second instance and must catch up a missed run")
			}
		})
	}
}

// The shape check fails on what Task Scheduler would refuse.
func TestTheShapeCheckCatchesMistakes(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(windowsDir, "keyescrow-backup.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{"<RandomDelay>PT1H</RandomDelay>", "<RandomDelay>1 hour</RandomDelay>", "RandomDelay has the invalid value"},
		{"<LogonType>ServiceAccount</LogonType>", "<LogonType>System</LogonType>", "LogonType has the invalid value"},
		{"<Priority>7</Priority>", "<Priorty>7</Priorty>", "Settings may not contain Priorty"},
		{"<UserId>S-1-5-18</UserId>", "", "Principal lacks UserId"},
	} {
		bad := strings.Replace(string(good), tc.from, tc.to, 1)
		problems := checkShape(parseTask(t, strings.NewReader(bad)))
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, tc.want) }) {
			t.Errorf("%s → %s: problems %v, want %q", tc.from, tc.to, problems, tc.want)
		}
	}
}

// The registration script never takes a secret as a parameter and supports
// -WhatIf (its dry run). PowerShell is not packaged for Debian, so the
// script itself cannot run here; see the README.
func TestRegistrationScriptTakesNoSecretsAndHasADryRun(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(windowsDir, "Register-KeyEscrowTask.ps1"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, "SupportsShouldProcess = $true") || strings.Count(s, "$PSCmdlet.ShouldProcess(") < 5 {
		t.Error("the script must guard every change with ShouldProcess so -WhatIf is a dry run")
	}
	params := s[strings.Index(s, "param("):strings.Index(s, "Set-StrictMode")]
	for _, bad := range []string{"Password", "Secret", "Dsn", "Key "} {
		if strings.Contains(params, "$"+bad) {
			t.Errorf("the script takes a secret parameter ($%s)", bad)
		}
	}
	if !strings.Contains(s, "SetAccessRuleProtection($true, $false)") {
		t.Error("the secrets' ACL must not inherit access")
	}
}
