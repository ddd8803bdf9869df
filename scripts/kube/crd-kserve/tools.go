//go:build tools

package tools

import (
	_ "github.com/kserve/kserve/pkg/apis/serving/v1beta1"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
