// Package monitoring holds valguard's Grafana dashboard
// (grafana-dashboard.json) and Prometheus alert rules (alerts.yml, with
// their promtool unit tests in alerts_test.yml). Its tests check the rules
// with promtool, the dashboard's structure, and that every metric either
// uses exists on a live valguard. Nothing in it is needed at run time.
package monitoring
