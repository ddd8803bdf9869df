//go:build tools

package tools

import (
	_ "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
