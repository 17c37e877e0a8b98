package api

import (
	"net/http"
	"time"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/policy"
	"github.com/mfad/mfad/service"
)

// Handlers for the account's own settings and for the actions that weaken
// or recover an account: fresh second-factor proofs, preferences,
// remember-device tokens, unlocking, account recovery requests and
// temporary bypasses.

func (s *Server) reauth(w http.ResponseWriter, r *http.Request, id *Identity) error {
	u, req, err := userRequest[wire.CodeRequest](r, id, false)
	if err != nil {
		return err
	}
	v, proof, err := s.opts.Service.Reauth(r.Context(), caller(id), u, req.Code)
	if err != nil {
		return err
	}
	out := verificationToWire(v)
	out.Messages = nil
	if proof != "" {
		out.Proof, out.ProofExpiresIn = proof, int(service.ProofTTL/time.Second)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) preferences(w http.ResponseWriter, r *http.Request, id *Identity) error {
	u, req, err := userRequest[wire.Preferences](r, id, false)
	if err != nil {
		return err
	}
	if err := s.opts.Service.SetPreferences(r.Context(), caller(id), u, service.Preferences{DefaultMethod: policy.Method(req.DefaultMethod)}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, req)
	return nil
}

func (s *Server) devices(w http.ResponseWriter, r *http.Request, id *Identity) error {
	u, err := userParam(r, id)
	if err != nil {
		return err
	}
	ds, err := s.opts.Service.Devices(u)
	if err != nil {
		return err
	}
	out := wire.DevicesResponse{Devices: []wire.Device{}}
	for _, d := range ds {
		out.Devices = append(out.Devices, wire.Device{ID: d.ID, Network: d.Network, Service: d.Service, RHost: d.RHost,
			Policy: d.Policy, Created: d.Created.UTC(), Expires: d.Expires.UTC(), LastUsed: timePtr(d.LastUsed)})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) revokeDevices(w http.ResponseWriter, r *http.Request, id *Identity) error {
	u, err := userParam(r, id)
	if err != nil {
		return err
	}
	n, err := s.opts.Service.RevokeDevices(r.Context(), caller(id), u, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.RevokeResponse{Revoked: n})
	return nil
}

func (s *Server) unlock(w http.ResponseWriter, r *http.Request, id *Identity) error {
	if err := needAdmin(id); err != nil {
		return err
	}
	if err := s.opts.Service.Unlock(r.Context(), caller(id), r.PathValue("user")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.ConfirmResponse{Result: "ok"})
	return nil
}

func recoveryRequestToWire(rr *service.RecoveryRequest, notified bool) wire.RecoveryRequest {
	out := wire.RecoveryRequest{ID: rr.ID, User: rr.User, Reason: rr.Reason, Action: rr.Action, Status: rr.Status,
		Opened: rr.Opened.UTC(), EffectiveAt: rr.EffectiveAt.UTC(), Closed: timePtr(rr.Closed), ClosedHow: rr.ClosedHow}
	if notified {
		n := rr.Notified
		out.Notified = &n
	}
	return out
}

func (s *Server) openRecoveryRequest(w http.ResponseWriter, r *http.Request, id *Identity) error {
	if err := needAdmin(id); err != nil {
		return err
	}
	var req wire.RecoveryRequestOpen
	if err := decode(r, &req, false); err != nil {
		return err
	}
	rr, err := s.opts.Service.OpenRecoveryRequest(r.Context(), caller(id), r.PathValue("user"), req.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, recoveryRequestToWire(rr, true))
	return nil
}

func (s *Server) getRecoveryRequest(w http.ResponseWriter, r *http.Request, id *Identity) error {
	u, err := userParam(r, id)
	if err != nil {
		return err
	}
	rr, err := s.opts.Service.RecoveryRequestOf(u)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, recoveryRequestToWire(rr, false))
	return nil
}

func (s *Server) cancelRecoveryRequest(w http.ResponseWriter, r *http.Request, id *Identity) error {
	u, req, err := userRequest[wire.CodeRequest](r, id, true)
	if err != nil {
		return err
	}
	rr, err := s.opts.Service.CancelRecoveryRequest(r.Context(), caller(id), u, req.Code)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, recoveryRequestToWire(rr, false))
	return nil
}

func (s *Server) grantBypass(w http.ResponseWriter, r *http.Request, id *Identity) error {
	if err := needAdmin(id); err != nil {
		return err
	}
	var req wire.BypassRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	d, err := time.ParseDuration(req.For)
	if err != nil {
		return badRequest("for must be a Go duration such as \"48h\"")
	}
	until, err := s.opts.Service.GrantBypass(r.Context(), caller(id), r.PathValue("user"), d, req.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, wire.BypassResponse{Until: until.UTC()})
	return nil
}

func (s *Server) endBypass(w http.ResponseWriter, r *http.Request, id *Identity) error {
	if err := needAdmin(id); err != nil {
		return err
	}
	if err := s.opts.Service.EndBypass(r.Context(), caller(id), r.PathValue("user")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
