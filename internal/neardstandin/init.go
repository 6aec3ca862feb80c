package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// initStake is the stake init gives the validator in genesis.json, in
// yoctoNEAR (50,000,000 NEAR, nearcore's testing stake).
const initStake = "50000000000000000000000000000000"

// initCmd is `neard init`: it writes node_key.json, validator_key.json
// (only with --account-id), genesis.json and, last, config.json. It
// refuses a home that already has a config.json.
func initCmd(home string, args []string, stderr io.Writer) error {
	fs := newFlagSet("init", stderr)
	chainID := fs.String("chain-id", "localnet", "the chain id written to genesis.json")
	account := fs.String("account-id", "", "the validator account; also writes validator_key.json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "neard init: unexpected argument %q\n%s", fs.Arg(0), usage)
		return errUsage
	}
	if err := os.MkdirAll(home, 0o755); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	configPath := filepath.Join(home, "config.json")
	if _, err := os.Lstat(configPath); err == nil {
		return fmt.Errorf("init: %s already exists", configPath)
	}

	nodeKey, err := newKeyFile("node")
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := nodeKey.write(filepath.Join(home, defaultNodeKey)); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	g := genesisFile{
		ChainID:         *chainID,
		GenesisTime:     time.Now().UTC(),
		ProtocolVersion: protocolVersion,
		Validators:      []genesisValidator{},
	}
	if *account != "" {
		vk, err := newKeyFile(*account)
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		if err := vk.write(filepath.Join(home, defaultValidatorKey)); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		g.Validators = append(g.Validators, genesisValidator{*account, vk.PublicKey, initStake})
	}
	gb, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := os.WriteFile(filepath.Join(home, defaultGenesisFile), append(gb, '\n'), 0o644); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	var cb bytes.Buffer
	if err := json.Indent(&cb, []byte(defaultConfig), "", "  "); err != nil {
		return fmt.Errorf("init: default config: %w", err)
	}
	cb.WriteByte('\n')
	if err := os.WriteFile(configPath, cb.Bytes(), 0o644); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	return nil
}
