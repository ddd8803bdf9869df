//go:build tools

package tools

import (
	_ "github.com/kubeflow/spark-operator/v2/api/v1beta2"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
