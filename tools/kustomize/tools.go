//go:build tools

// Pins the kustomize the deployment tests render k8s/ overlays with
// (tests/helpers/kustomize.ts builds it into .cache/ on demand).
package tools

import _ "sigs.k8s.io/kustomize/kustomize/v5"
