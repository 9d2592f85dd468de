package apiserver

import (
	"bytes"
	"encoding/json"
)

// strictUnmarshal decodes JSON, refusing trailing data after the value.
func strictUnmarshal(data []byte, into interface{}) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(into); err != nil {
		return err
	}
	if dec.More() {
		return errTrailingData
	}
	return nil
}

type decodeError string

func (e decodeError) Error() string { return string(e) }

const errTrailingData = decodeError("unexpected data after the JSON object")
