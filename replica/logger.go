package replica

import (
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// NewLogger is valguard run's logger, writing to w: level is debug, info,
// warn or error; format is json or console, "" meaning console when w is
// a terminal and json otherwise. It sets zerolog's time format
// (milliseconds, RFC 3339) for the whole process. Its errors name the
// flags, --log-level and --log-format.
func NewLogger(w *os.File, level, format string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || lvl == zerolog.NoLevel {
		return zerolog.Logger{}, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	if format == "" {
		format = "json"
		if fi, err := w.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "console"
		}
	}
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	var log zerolog.Logger
	switch format {
	case "json":
		log = zerolog.New(w)
	case "console":
		log = zerolog.New(zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339})
	default:
		return log, fmt.Errorf("--log-format %q: want json or console", format)
	}
	return log.Level(lvl).With().Timestamp().Logger(), nil
}
