module ztmesh.test/tlspeer

go 1.25
