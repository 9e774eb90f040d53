package client

func dialConnect(addr string, o options) conn { panic("connect: not yet") }
