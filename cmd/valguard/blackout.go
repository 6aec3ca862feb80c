package main

import (
	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/operator"
)

// blackoutFlags are the flags of the commands that move leadership on
// purpose (handover, drain): a window during which doing so is unsafe.
func blackoutFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "blackout-url", Usage: "GET this URL; the JSON field --blackout-field true means hand-overs are unsafe now (Gonka: http://127.0.0.1:8000/v1/epochs/latest)", EnvVars: env("blackout-url")},
		&cli.StringFlag{Name: "blackout-field", Usage: "the field of --blackout-url's JSON answer, a gjson path (Gonka: is_confirmation_poc_active)", EnvVars: env("blackout-field")},
		&cli.StringFlag{Name: "blackout-command", Usage: "run this with sh -c; a non-zero exit means hand-overs are unsafe now", EnvVars: env("blackout-command")},
		&cli.BoolFlag{Name: "no-wait", Usage: "refuse rather than wait when a blackout window is open"},
		&cli.BoolFlag{Name: "force", Usage: "go ahead during a blackout window or over another hand-over request (loudly)"},
	}
}

// moveOptions are the hand-over settings of handover and drain.
func moveOptions(c *cli.Context) (operator.MoveOptions, error) {
	b, err := operator.NewBlackoutCheck(c.String("blackout-url"), c.String("blackout-field"), c.String("blackout-command"))
	if err != nil {
		return operator.MoveOptions{}, err
	}
	return operator.MoveOptions{To: c.String("to"), MaxLag: c.Int64("max-lag"), Timeout: c.Duration("timeout"), Window: c.Duration("window"),
		NodeRPCs: c.StringSlice("node-rpc"), Blackout: b, Force: c.Bool("force"), NoWait: c.Bool("no-wait")}, nil
}
